package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/baton-ml/baton/internal/store"
)

// metrics are the server's Prometheus series, on a registry of its own
// (no global state: two servers in one process, as in tests, do not clash).
type metrics struct {
	reg      *prometheus.Registry
	fires    *prometheus.CounterVec
	started  *prometheus.CounterVec
	finished *prometheus.CounterVec
	tasks    *prometheus.CounterVec
	signals  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	cronLag  prometheus.Histogram
	running  prometheus.Gauge
	pending  prometheus.Gauge
	refused  *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		fires: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_trigger_fires_total",
			Help: "Triggers fired, by kind (signal, join, on_finish, cron)."}, []string{"kind"}),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_runs_started_total",
			Help: "Runs the server started, by trigger."}, []string{"trigger"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_runs_finished_total",
			Help: "Runs that ended (any process), by status."}, []string{"status"}),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_task_attempts_total",
			Help: "Task attempts the server ran, by outcome (pending: will retry)."}, []string{"status"}),
		signals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_signals_published_total",
			Help: "Signals published through the API, by name."}, []string{"signal"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baton_trigger_latency_seconds",
			Help:    "From what triggered a run (signal published, run ended, cron tick) to the run started.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, []string{"trigger"}),
		cronLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "baton_cron_lag_seconds",
			Help:    "How late cron ticks fired.",
			Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2, 5, 30, 300}}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Name: "baton_runs_running", Help: "Runs executing in this server."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "baton_runs_pending", Help: "Runs waiting to be started by a server."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_http_refused_total",
			Help: "API requests refused before their handler, by reason (host, origin, content_type, auth)."}, []string{"reason"}),
	}
	m.reg.MustRegister(m.fires, m.started, m.finished, m.tasks, m.signals, m.latency, m.cronLag, m.running, m.pending, m.refused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// The orchestrator's counts (orchestrate.Metrics), as the series above.

func (m *metrics) Fired(kind string)       { m.fires.WithLabelValues(kind).Inc() }
func (m *metrics) CronLag(d time.Duration) { m.cronLag.Observe(d.Seconds()) }
func (m *metrics) RunStarted(trigger string, latency time.Duration, ok bool) {
	m.started.WithLabelValues(trigger).Inc()
	if ok {
		m.latency.WithLabelValues(trigger).Observe(latency.Seconds())
	}
}
func (m *metrics) RunFinished(st store.RunStatus)  { m.finished.WithLabelValues(string(st)).Inc() }
func (m *metrics) TaskAttempt(st store.TaskStatus) { m.tasks.WithLabelValues(string(st)).Inc() }
func (m *metrics) Running(delta int)               { m.running.Add(float64(delta)) }
func (m *metrics) Pending(n int)                   { m.pending.Set(float64(n)) }

# The Metaflow side of bench/compare/metaflow.sh: start makes n items, work
# runs once per item (a foreach), join sums the outputs and checks the total,
# end prints it. baton_flow.yaml is the same flow for baton, step for step,
# with each step a python3 process as Metaflow's local mode starts one per
# task. WORK adds the same CPU loop to every work task on both sides.
from metaflow import FlowSpec, Parameter, step


def spin(k):
    # The same loop as in baton_flow.yaml, so "work per task" is equal.
    s = 0
    for i in range(k):
        s += i * i
    return s


class CompareFlow(FlowSpec):
    n = Parameter("n", type=int, default=100)
    work = Parameter("work", type=int, default=0)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work_step, foreach="items")

    @step
    def work_step(self):
        spin(self.work)
        self.out = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.out for i in inputs)
        want = self.n * (self.n - 1)
        if self.total != want:
            raise Exception("total %d, want %d" % (self.total, want))
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    CompareFlow()

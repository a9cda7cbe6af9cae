// baton's pages change nothing themselves: the cancel and resume buttons
// call the JSON API from this origin with the session cookie, so the API's
// guard (JSON only, Origin, Sec-Fetch-Site, the role) decides, as for any
// other client. One use case, one function: post.
(function () {
  'use strict';

  async function post(path) {
    const res = await fetch(path, {
      method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: '{}',
      credentials: 'same-origin',
    });
    let body = {};
    try { body = await res.json(); } catch (e) { /* not JSON: the status says it */ }
    if (!res.ok) {
      throw new Error(body.error || (res.status + ' ' + res.statusText));
    }
    return body;
  }

  function flash(msg, bad) {
    const el = document.getElementById('flash');
    if (!el) { return; }
    el.textContent = msg;
    el.className = bad ? 'flash bad' : 'flash';
  }

  document.addEventListener('click', async function (ev) {
    const b = ev.target.closest('button[data-action]');
    if (!b) { return; }
    const id = b.dataset.run;
    const act = b.dataset.action;
    if (act !== 'cancel' && act !== 'resume') { return; }
    b.disabled = true;
    try {
      const res = await post('/api/v1/runs/' + encodeURIComponent(id) + '/' + act);
      if (act === 'resume' && res.id) {
        window.location.assign('/runs/' + encodeURIComponent(res.id));
        return;
      }
      flash('Cancel requested for run ' + id + '.');
      b.textContent = 'Cancelling…';
    } catch (e) {
      flash('Run ' + id + ': ' + e.message, true);
      b.disabled = false;
    }
  });
})();

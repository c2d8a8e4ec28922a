// Replaced by the dashboard page.
fetch('/api/dashboard').then(r => r.json()).then(d => { document.getElementById('app').textContent = JSON.stringify(d, null, 2); });

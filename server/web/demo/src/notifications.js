// notifications.js - the place for the opt-in notifications control in the
// settings dialog. Web Push (GET /api/push/public-key, POST
// /api/push/subscribe) is a later issue: until the server has the public-key
// endpoint the button stays disabled with a note. The subscription itself
// (serviceWorker.pushManager.subscribe with the server's VAPID key) belongs
// here; sw.js would get the 'push' handler.

export async function initNotifications() {
  const btn = document.getElementById('notifications-btn');
  const note = document.getElementById('notifications-note');
  if (!('serviceWorker' in navigator) || !('PushManager' in window)) {
    note.textContent = 'This browser cannot receive push notifications.';
    return;
  }
  try {
    const r = await fetch('/api/push/public-key', { cache: 'no-store' });
    if (!r.ok) return; // not offered by this server (yet)
    note.textContent = 'This server offers notifications for chat messages; enabling them is not wired up in the demo yet.';
  } catch { /* offline */ }
  btn.disabled = true;
}

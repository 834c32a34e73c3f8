// auth.js - a token for this tab's identity. In development mode
// (`tandem serve --dev`) GET /api/dev/token mints one (docs/AUTH.md) for
// every connection attempt; the last one is kept in localStorage for when the
// endpoint cannot be reached.
// Without --dev the endpoint is 404 and the page connects without a token
// (which such a server refuses: a real deployment hands the page a token).

const SKEW_S = 60;

export function makeTokenSource(identity) {
  const key = `${identity.key}.token`;
  const read = () => {
    try { return JSON.parse(localStorage.getItem(key) || 'null'); } catch { return null; }
  };
  // Asked before every connection attempt: a fresh token each time, because a
  // --dev server generates a new secret when it restarts and the old tokens no
  // longer verify. The stored one is only for when the server is unreachable.
  /** source.mode: how the last token was had: 'dev' (minted), 'stored' (offline fallback), 'none' (not a --dev server). */
  const source = async function getToken() {
    const cached = read();
    const q = new URLSearchParams({ user: identity.user, name: identity.name });
    let res;
    try {
      res = await fetch(`/api/dev/token?${q}`, { cache: 'no-store' });
    } catch (e) {
      if (cached && cached.name === identity.name && cached.expires_at - SKEW_S > Date.now() / 1000) {
        source.mode = 'stored';
        return cached.token;
      }
      throw e; // the client library retries with backoff
    }
    if (res.status === 404) { // not a --dev server
      source.mode = 'none';
      return '';
    }
    if (!res.ok) throw new Error(`/api/dev/token: HTTP ${res.status}`);
    const j = await res.json();
    try { localStorage.setItem(key, JSON.stringify({ token: j.token, expires_at: j.expires_at, name: identity.name })); } catch { /* full */ }
    source.mode = 'dev';
    return j.token;
  };
  source.mode = null;
  return source;
}

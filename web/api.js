// The service's API as the dashboard uses it: JSON over fetch with the
// token, the token itself (asked once, kept in sessionStorage for the
// browser session), and the URL of a run's event stream.
//
// A 401 means the token is missing or no longer right: the request waits
// for the user to enter one and is then sent again, so no caller has to
// know about tokens.

const KEY = 't2istage.token';
let token = sessionStorage.getItem(KEY);
let asking = null;		// the open token prompt, shared by every 401
let askHandler = null;		// (reason) => Promise<string>, set by the page

export class ApiError extends Error {
	constructor(status, message) {
		super(message);
		this.status = status;
	}
}

export function hasToken() {
	return token !== null && token !== '';
}

export function onTokenNeeded(fn) {
	askHandler = fn;
}

export function forgetToken() {
	token = null;
	sessionStorage.removeItem(KEY);
}

function askToken(reason) {
	if (asking === null) {
		asking = askHandler(reason).then((t) => {
			token = t;
			sessionStorage.setItem(KEY, t);
			asking = null;
		});
	}
	return asking;
}

// What the page must know first: does the service want a token?  Asked
// before any /v1 call, so that a first visit shows no 401 in the console.
export async function serviceInfo() {
	const r = await fetch('/ui/service.json', { cache: 'no-store' });
	if (!r.ok)
		throw new ApiError(r.status, `service.json: HTTP ${r.status}`);
	return r.json();
}

export async function ensureToken(info) {
	if (info.token_required && !hasToken())
		await askToken('This service needs its access token.');
}

function bodyOf(method, body) {
	if (method === 'GET')
		return undefined;
	if (body === undefined)
		return '{}';
	return typeof body === 'string' ? body : JSON.stringify(body);
}

// One call; resolves to the answer's JSON, throws ApiError with the
// service's own message ({"error": "..."}) otherwise.
export async function api(method, path, body) {
	for (;;) {
		const headers = { Accept: 'application/json' };
		const sent = token;
		if (hasToken())
			headers.Authorization = `Bearer ${token}`;
		// The service takes a state change only as JSON (its CSRF rule).
		if (method !== 'GET')
			headers['Content-Type'] = 'application/json';
		let r;
		try {
			r = await fetch(path, { method, headers, body: bodyOf(method, body),
				cache: 'no-store' });
		} catch (e) {
			throw new ApiError(0, `the service cannot be reached (${e.message})`);
		}
		if (r.status === 401) {
			if (token !== sent)
				continue;	// a new token came in meanwhile
			const had = hasToken();
			forgetToken();
			await askToken(had ? 'The token was refused: enter it again.'
				: 'This service needs its access token.');
			continue;
		}
		const text = await r.text();
		let data = null;
		try {
			data = text ? JSON.parse(text) : null;
		} catch (e) {
			data = null;
		}
		if (!r.ok)
			throw new ApiError(r.status, (data && data.error) || `HTTP ${r.status}`);
		return data;
	}
}

// EventSource sends no header: the streams take the token in the query.
export function eventsUrl(runId) {
	const base = `/v1/runs/${encodeURIComponent(runId)}/events`;
	return hasToken() ? `${base}?access_token=${encodeURIComponent(token)}` : base;
}

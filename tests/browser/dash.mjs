// Helpers of the dashboard scenarios (dashboard_*.mjs): the built-in page
// at the service's own origin, as a user meets it.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

// Every console message, page error, CSP violation and failed request of
// the page, for the "no console errors" checks.  The violation listener is
// an init script (Playwright's, not the page's): the page's own CSP does
// not apply to it.
export function watch(page) {
	const seen = { console: [], pageerrors: [], failed: [], requests: [], closedStreams: 0 };
	page.on('console', (m) => seen.console.push({ type: m.type(), text: m.text() }));
	page.on('pageerror', (e) => seen.pageerrors.push(e.message));
	page.on('requestfailed', (r) => {
		// The page closes its EventSource on `done`, which may be before
		// the stream's last bytes: the browser calls that aborted.
		if (r.resourceType() === 'eventsource' && r.failure()?.errorText === 'net::ERR_ABORTED')
			seen.closedStreams++;
		else
			seen.failed.push(`${r.url()} ${r.failure()?.errorText}`);
	});
	page.on('request', (r) => seen.requests.push({
		url: r.url(), method: r.method(), type: r.resourceType(),
		authorization: r.headers().authorization || null,
	}));
	return seen;
}

export async function csp(page) {
	return page.evaluate(() => window.__csp || []);
}

export async function newDashboard(context, a, width = 1280) {
	const page = await context.newPage();
	await page.addInitScript(() => {
		window.__csp = [];
		document.addEventListener('securitypolicyviolation',
			(e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
	});
	await page.setViewportSize({ width, height: 900 });
	page.seen = watch(page);
	return page;
}

// Starts a run of the project through the API, as a pipeline would (not
// through the page); the answer's status and body.
export async function startRun(a, project) {
	const r = await fetch(`${a.api}/v1/projects/${project}/image-generation`, {
		method: 'POST', body: '{}',
		headers: { Authorization: `Bearer ${a.token}`, 'Content-Type': 'application/json' },
	});
	return { status: r.status, body: await r.json() };
}

// Opens the dashboard; enters the token in its prompt when given one.
export async function openDashboard(context, a, hash = '') {
	const page = await newDashboard(context, a);
	await page.goto(`${a.api}/${hash}`, { waitUntil: 'load' });
	if (a.token)
		await enterToken(page, a.token);
	return page;
}

export async function enterToken(page, token) {
	await page.waitForSelector('#token-dialog[open]', { timeout: 30000 });
	await page.getByLabel('Token', { exact: true }).fill(token);
	await page.getByRole('button', { name: 'Continue' }).click();
	await page.waitForSelector('#token-dialog', { state: 'hidden' });
}

export async function openProject(page, id) {
	await page.click(`a[href="#/projects/${id}"]`);
	await page.waitForSelector('.tile');
}

// The run panel's state ("running", "completed", "partial", ...) and bar.
export async function panel(page) {
	return page.evaluate(() => {
		const p = document.querySelector('.run-panel');
		const bar = document.getElementById('run-progress');
		return {
			state: p.dataset.state,
			value: Number(bar.getAttribute('aria-valuenow')),
			text: bar.getAttribute('aria-valuetext'),
			numbers: p.querySelector('.run-numbers').textContent,
			okWidth: p.querySelector('.fill.ok').style.width,
			badWidth: p.querySelector('.fill.bad').style.width,
		};
	});
}

export async function waitState(page, states, ms = 60000) {
	await page.waitForFunction((want) => want.includes(
		document.querySelector('.run-panel')?.dataset.state), states, { timeout: ms, polling: 50 });
}

// Each tile as shown: status, prompt, error, and its image's state.
export async function tiles(page) {
	return page.$$eval('.tile', (els) => els.map((el) => {
		const img = el.querySelector('img');
		const link = el.querySelector('.thumb-link');
		return {
			id: el.dataset.id,
			status: el.dataset.status,
			prompt: el.querySelector('.prompt').textContent,
			error: el.querySelector('.error-text').hidden ? null
				: el.querySelector('.error-text').textContent,
			imageShown: !link.hidden,
			src: img.getAttribute('src'),
			complete: img.complete,
			naturalWidth: img.naturalWidth,
			href: link.getAttribute('href'),
		};
	}));
}

// Every shown image has loaded (the bytes decoded, naturalWidth > 0).
export async function waitImages(page, ms = 60000) {
	await page.waitForFunction(() => [...document.querySelectorAll('.tile')].every((el) => {
		const img = el.querySelector('img');
		return el.dataset.status === 'completed' && img.complete && img.naturalWidth > 0;
	}), null, { timeout: ms, polling: 100 });
}

export async function shot(page, dir, name, width) {
	mkdirSync(dir, { recursive: true });
	const path = join(dir, name);
	if (width) {
		await page.setViewportSize({ width, height: 900 });
		// a frame for the layout to follow the new width
		await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
	}
	await page.screenshot({ path, fullPage: true });
	return path;
}

export function problems(page) {
	const s = page.seen;
	return {
		console_errors: s.console.filter((m) => m.type === 'error' || m.type === 'warning')
			.map((m) => `${m.type}: ${m.text}`),
		pageerrors: s.pageerrors.slice(),
		failed: s.failed.slice(),
	};
}

// Shown controls without an accessible name (a label, text, aria-label or
// title), and images without an alt attribute: what a screen reader
// would read as "button" or a file name.
export async function unnamed(page) {
	return page.evaluate(() => {
		const shown = (el) => el.getClientRects().length > 0 &&
			getComputedStyle(el).visibility !== 'hidden';
		const name = (el) => (el.getAttribute('aria-label') || '').trim() ||
			(el.labels && [...el.labels].map((l) => l.textContent).join('').trim()) ||
			el.textContent.trim() || (el.title || '').trim() ||
			[...el.querySelectorAll('img')].map((i) => i.alt).join('').trim();
		const bad = [...document.querySelectorAll('button, a[href], input, textarea, select')]
			.filter((el) => shown(el) && !name(el)).map((el) => el.outerHTML.slice(0, 120));
		const imgs = [...document.querySelectorAll('img')].filter((i) => !i.hasAttribute('alt'))
			.map((i) => i.outerHTML.slice(0, 120));
		return bad.concat(imgs);
	});
}

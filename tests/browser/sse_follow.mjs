// A page on another origin starts a run of a token-protected service,
// follows it with EventSource (?access_token=, since EventSource sends no
// header), shows every image through its file_url in an <img> (no header
// either), and is watched after `done`: the stream ends, the EventSource
// reconnects once with Last-Event-ID, is told 204, and stays closed.
import { pageAt, until } from './lib.mjs';

export default async function (context, a) {
	const page = await pageAt(context, a.site);
	await page.evaluate(async ({ api, token, project }) => {
		const w = window;
		w.t2i = { events: [], opens: 0, errors: 0, states: [], images: [] };
		const r = await fetch(`${api}/v1/projects/${project}/image-generation`, {
			method: 'POST',
			headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
			body: '{}',
		});
		w.t2i.start = r.status;
		const run = (await r.json()).run_id;
		w.t2i.run = run;
		const es = new EventSource(
			`${api}/v1/runs/${run}/events?access_token=${encodeURIComponent(token)}`);
		w.t2i.es = es;
		es.onopen = () => { w.t2i.opens++; };
		es.onerror = () => { w.t2i.errors++; w.t2i.states.push(es.readyState); };
		es.onmessage = (m) => {
			const ev = JSON.parse(m.data);
			w.t2i.events.push(ev);
			if (ev.type !== 'image_generated')
				return;
			const img = document.createElement('img');
			img.alt = ev.storyboard_id;
			document.body.append(img);
			img.src = api + ev.image.file_url;
			w.t2i.images.push(img.decode().then(() => ({
				src: ev.image.file_url, naturalWidth: img.naturalWidth,
				naturalHeight: img.naturalHeight, width: ev.image.width,
				height: ev.image.height,
			}), (e) => ({ src: ev.image.file_url, error: String(e) })));
		};
	}, a);
	await until(page, () => window.t2i.events.some((e) => e.type === 'done'));
	const images = await page.evaluate(() => Promise.all(window.t2i.images));
	// After done: reconnect, 204, CLOSED (2) for good.
	await until(page, () => window.t2i.es.readyState === 2, null, 30000);
	const closedAfter = await page.evaluate(() => ({
		opens: window.t2i.opens, errors: window.t2i.errors,
	}));
	// Longer than retry: 3000: a loop would have come back by now.
	await page.waitForTimeout(a.watch_ms || 4000);
	return await page.evaluate(({ closedAfter, images }) => ({
		start: window.t2i.start,
		run: window.t2i.run,
		types: window.t2i.events.map((e) => e.type),
		seqs: window.t2i.events.map((e) => e.seq),
		opens: window.t2i.opens,
		errors: window.t2i.errors,
		states: window.t2i.states,
		readyState: window.t2i.es.readyState,
		closedAfter,
		images,
		complete: [...document.images].map((i) => i.complete && i.naturalWidth > 0),
	}), { closedAfter, images });
}

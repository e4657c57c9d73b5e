// A project read that the service answered before a storyboard's image was
// generated, delivered to the page after that storyboard's image_generated
// event and before the run's end: the tile keeps the image the event
// showed.  The page reads the project as it starts the run ("Run missing");
// the browser holds that read (page.route) while the test plugin holds
// the storyboards at their gates, so the order is the same on every machine.
import { writeFileSync } from 'node:fs';
import { csp, openDashboard, problems, tiles, waitState } from './dash.mjs';

function shown(page, id) {
	return page.$eval(`.tile[data-id="${id}"]`, (el) => {
		const img = el.querySelector('img');
		return { status: el.dataset.status, imageShown: !el.querySelector('.thumb-link').hidden,
			complete: img.complete, naturalWidth: img.naturalWidth, src: img.getAttribute('src') };
	});
}

export default async function (context, a) {
	const out = {};
	const page = await openDashboard(context, a, `#/projects/${a.project}`);
	await page.waitForSelector('.tile');
	// How many project reads the page has drawn: each redraws the sub-title.
	await page.evaluate(() => {
		window.__drawn = 0;
		new MutationObserver(() => window.__drawn++)
			.observe(document.querySelector('.project .sub'), { childList: true });
	});
	let held = null, release;
	const released = new Promise((r) => { release = r; });
	await page.route((u) => u.pathname === `/v1/projects/${a.project}`, async (route) => {
		if (held)
			return route.continue();
		held = await route.fetch();	// answered now, the storyboards at the gates
		await released;
		await route.fulfill({ response: held });
	});
	await page.click('#run-missing');
	await waitState(page, ['running'], 30000);
	for (let i = 0; i < 600 && !held; i++)
		await page.waitForTimeout(50);
	out.held = held ? await held.json() : null;

	writeFileSync(a.gate, '');	// the first storyboard goes, the second waits
	await page.waitForFunction((id) => {
		const el = document.querySelector(`.tile[data-id="${id}"]`);
		const img = el.querySelector('img');
		return el.dataset.status === 'completed' && img.complete && img.naturalWidth > 0;
	}, a.first, { timeout: 60000, polling: 50 });
	out.afterEvent = await shown(page, a.first);
	const drawn = await page.evaluate(() => window.__drawn);
	release();
	await page.waitForFunction((n) => window.__drawn > n, drawn, { timeout: 30000, polling: 20 });
	out.afterStaleRead = await shown(page, a.first);
	out.panelAfterStaleRead = await page.$eval('.run-panel', (p) => p.dataset.state);

	writeFileSync(`${a.gate}.2`, '');
	await waitState(page, ['completed', 'partial', 'failed']);
	out.after = await tiles(page);
	out.problems = problems(page);
	out.csp = await csp(page);
	return out;
}

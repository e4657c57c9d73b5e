// A storyboard that fails is shown failed while the rest of the run goes
// on (the test plugin holds the others at a gate until the page has been
// looked at), the bar ends full at `done`, and "Retry failed" runs that
// storyboard alone.  Screenshots of the page mid-run at 1280 and 390 px.
import { writeFileSync } from 'node:fs';
import {
	csp, openDashboard, openProject, panel, problems, shot, tiles, unnamed, waitState,
} from './dash.mjs';

export default async function (context, a) {
	const out = {};
	const page = await openDashboard(context, a);
	await openProject(page, a.project);
	await page.getByRole('button', { name: 'Run all' }).click();
	// The failure is on screen while the run is still going.
	await page.waitForSelector(`.tile[data-id="${a.failing}"][data-status="failed"]`);
	await page.waitForFunction(() => document.querySelectorAll(
		'.tile[data-status="generating"]').length > 0, null, { polling: 50 });
	out.during = {
		panel: await panel(page),
		tiles: await tiles(page),
		cancelEnabled: await page.$eval('#cancel-run', (b) => !b.disabled && !b.hidden),
		failedChip: await page.$eval('.chip[data-filter="failed"] .chip-n', (e) => e.textContent),
		failedColour: await page.$eval(`.tile[data-id="${a.failing}"]`,
			(e) => getComputedStyle(e).borderTopColor),
		okColour: await page.$eval('.tile[data-status="completed"]',
			(e) => getComputedStyle(e).borderTopColor),
	};
	out.unnamed = await unnamed(page);
	out.shots = [await shot(page, a.artifacts, 'dashboard-1280.png', 1280),
		await shot(page, a.artifacts, 'dashboard-390.png', 390)];
	await page.setViewportSize({ width: 1280, height: 900 });
	// Only failed tiles, with the filter.
	await page.click('.chip[data-filter="failed"]');
	out.filtered = await page.$$eval('.tile', (els) => els.filter(
		(e) => getComputedStyle(e).display !== 'none').map((e) => e.dataset.id));
	await page.click('.chip[data-filter="all"]');

	writeFileSync(a.gate, '');
	await waitState(page, ['partial', 'completed', 'failed']);
	out.after = { panel: await panel(page), tiles: await tiles(page) };
	out.retryLabel = await page.$eval('#retry-failed', (b) => b.textContent);

	await page.click('#retry-failed');
	await page.waitForFunction(() => document.querySelectorAll('.history tbody tr').length === 2,
		null, { timeout: 60000, polling: 50 });
	await waitState(page, ['failed', 'partial', 'completed']);
	out.retried = { panel: await panel(page), tiles: await tiles(page) };

	await page.click('a.brand');
	await page.waitForSelector('table.projects tbody tr');
	out.listShot = await shot(page, a.artifacts, 'dashboard-list-1280.png');
	out.unnamedList = await unnamed(page);
	out.listFailedMarked = await page.$eval('table.projects tbody tr',
		(r) => r.classList.contains('has-failed'));
	out.problems = problems(page);
	out.csp = await csp(page);
	return out;
}

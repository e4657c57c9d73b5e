// A run cancelled from the page: "Cancel run" while storyboards are being
// generated, the panel then says cancelled with its bar short of full,
// and the run buttons come back.
import { csp, openDashboard, openProject, panel, problems, tiles, waitState } from './dash.mjs';

export default async function (context, a) {
	const out = {};
	const page = await openDashboard(context, a);
	await openProject(page, a.project);
	await page.getByRole('button', { name: 'Run all' }).click();
	await page.waitForSelector('.tile[data-status="generating"]');
	out.during = await panel(page);
	await page.getByRole('button', { name: 'Cancel run' }).click();
	await waitState(page, ['cancelled']);
	out.after = await panel(page);
	out.tiles = await tiles(page);
	out.buttons = await page.$$eval('.page-head .actions button', (bs) => bs.map((b) => ({
		id: b.id, disabled: b.disabled, hidden: b.hidden })));
	out.problems = problems(page);
	out.csp = await csp(page);
	return out;
}

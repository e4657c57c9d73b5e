// A storyboard whose provider task is being polled says so in its tile,
// on a page opened while the run goes on; the note goes once it is done.
import { writeFileSync } from 'node:fs';
import { csp, openDashboard, panel, problems, waitState } from './dash.mjs';

async function notes(page) {
	return page.$$eval('.tile', (els) => els.map((el) => {
		const t = el.querySelector('.task');
		return { id: el.dataset.id, status: el.dataset.status, task: t.hidden ? null : t.textContent };
	}));
}

export default async function (context, a) {
	const out = {};
	const page = await openDashboard(context, a, `#/projects/${a.project}`);
	await page.waitForSelector('.tile');
	await waitState(page, ['running']);
	out.during = await notes(page);
	out.panel = await panel(page);
	writeFileSync(a.gate, '');
	await waitState(page, ['completed']);
	// The tiles are read again after done: the tasks are gone.
	await page.waitForFunction(() => [...document.querySelectorAll('.tile .task')].every(
		(t) => t.hidden), null, { polling: 50 });
	out.after = await notes(page);
	out.problems = problems(page);
	out.csp = await csp(page);
	return out;
}

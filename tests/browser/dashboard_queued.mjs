// A run the service queues (it already processes workers.max runs) shows
// as queued on its project's page, which follows it until it has run.
import { writeFileSync } from 'node:fs';
import {
	csp, openDashboard, openProject, panel, problems, startRun, waitState,
} from './dash.mjs';

export default async function (context, a) {
	const out = {};
	out.first = await startRun(a, a.busy);	// holds the one worker at the gate
	const page = await openDashboard(context, a);
	await openProject(page, a.project);
	out.second = await startRun(a, a.project);
	await waitState(page, ['queued'], 30000);
	out.during = await panel(page);
	writeFileSync(a.gate, '');
	await waitState(page, ['completed']);
	out.after = await panel(page);
	out.problems = problems(page);
	out.csp = await csp(page);
	return out;
}

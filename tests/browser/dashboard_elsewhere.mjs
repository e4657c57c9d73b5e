// A run started by someone else (here: this script, through the API, as a
// pipeline would) is picked up by a project page left open, and followed
// to its end.
import { writeFileSync } from 'node:fs';
import {
	csp, openDashboard, openProject, panel, problems, startRun, waitState,
} from './dash.mjs';

export default async function (context, a) {
	const out = {};
	const page = await openDashboard(context, a);
	await openProject(page, a.project);
	out.before = await panel(page);
	const r = await startRun(a, a.project);
	out.started = r.status;
	out.run = r.body.run_id;
	await waitState(page, ['running'], 30000);
	out.during = await panel(page);
	writeFileSync(a.gate, '');
	await waitState(page, ['completed']);
	out.after = await panel(page);
	out.problems = problems(page);
	out.csp = await csp(page);
	return out;
}

// A project's page: its storyboards as tiles, the latest run followed live,
// the run actions (all, only the missing ones, retry the failed ones,
// cancel), one storyboard's regeneration and prompt edit, the run history.
import { api } from './api.js';
import { h, clear, confirmDialog, shortId, timeEl, toast } from './dom.js';
import { badge, stageOf } from './projects.js';
import { Follower, RunPanel, historyTable } from './run.js';
import { Tile } from './tile.js';

const IDLE_POLL_MS = 10000;	// runs started elsewhere (a pipeline, the CLI)
// During a run the events draw the tiles; the project is read again for
// what no event carries (attempts after a retry, provider tasks): soon
// after a warning, else now and then.  Reading a project of 1,000
// storyboards costs the service tens of milliseconds of its one loop.
const WARNED_REFRESH_MS = 5000;
const LIVE_REFRESH_MS = 30000;

const FILTERS = [
	['all', 'All'], ['failed', 'Failed'], ['missing', 'Without image'], ['completed', 'Completed'],
];

export function showProject(main, id, go, setConn) {
	const page = new ProjectPage(main, id, go, setConn);
	page.load();
	return () => page.dispose();
}

class ProjectPage {
	constructor(main, id, go, setConn) {
		this.main = main;
		this.id = id;
		this.go = go;
		this.setConn = setConn;
		this.tiles = new Map();
		this.follower = null;
		this.panel = new RunPanel();
		this.gone = false;
		this.dirty = false;	// events came since the last refresh
		this.warned = false;	// a warning (a retry, a failover) among them
		this.lastRefresh = 0;
		// A project read is a snapshot of when the service answered: a
		// tile's events after that point are newer than it (evSeq), and
		// a read answered after a later read is older than it (reads).
		this.evSeq = 0;
		this.reads = 0;
		this.latestRun = null;
		this.timers = [];
	}

	dispose() {
		this.gone = true;
		this.timers.forEach(clearInterval);
		if (this.follower)
			this.follower.close();
		this.setConn(null);
	}

	async load() {
		let p;
		try {
			p = await api('GET', `/v1/projects/${this.id}`);
		} catch (x) {
			if (this.gone)
				return;
			clear(this.main).append(h('section', { class: 'page' },
				h('h1', { text: 'Project not available' }),
				h('p', { class: 'form-error', text: x.message }),
				h('p', {}, h('a', { href: '#/', text: 'Back to the projects' }))));
			return;
		}
		if (this.gone)
			return;
		this.render(p);
		await this.loadRuns(true);
		this.timers.push(setInterval(() => this.tick(), 1000));
	}

	// --- layout ---

	render(p) {
		this.project = p;
		document.title = `${p.name} · t2istage`;
		const crumb = document.querySelector('#crumbs [aria-current]');
		if (crumb)
			crumb.textContent = p.name || shortId(p.id);
		this.buttons = {
			all: h('button', { type: 'button', class: 'btn primary', id: 'run-all',
				text: 'Run all', onclick: () => this.start({}) }),
			missing: h('button', { type: 'button', class: 'btn', id: 'run-missing',
				onclick: () => this.start({ only_missing: true }) }),
			retry: h('button', { type: 'button', class: 'btn', id: 'retry-failed',
				onclick: () => this.start({ storyboard_ids: this.failedIds() }) }),
			cancel: h('button', { type: 'button', class: 'btn danger', id: 'cancel-run',
				text: 'Cancel run', onclick: () => this.cancel() }),
		};
		this.del = h('button', { type: 'button', class: 'btn danger-outline', id: 'delete-project',
			text: 'Delete project', onclick: () => this.remove() });
		this.grid = h('ul', { class: 'tiles', id: 'tiles', 'data-filter': 'all',
			'aria-label': 'Storyboards' });
		this.chips = h('div', { class: 'filters', role: 'group', 'aria-label': 'Show' });
		this.history = h('details', { class: 'panel history-panel' },
			h('summary', { text: 'Run history' }), h('div', { class: 'history-body' }));
		this.sub = h('p', { class: 'sub muted' });
		clear(this.main).append(h('section', { class: 'page project' },
			h('div', { class: 'page-head' },
				h('div', { class: 'title' }, h('h1', { text: p.name || '(unnamed)' }), this.sub),
				h('div', { class: 'actions' }, Object.values(this.buttons))),
			this.panel.el, this.chips, this.grid, this.history,
			h('div', { class: 'page-foot' },
				h('p', { class: 'muted', text: 'Deleting removes the project, its runs and events,'
					+ ' and the image files no other project uses.' }), this.del)));
		this.renderSub();
		this.renderTiles(p.storyboards);
		this.renderChips();
	}

	renderSub() {
		const p = this.project;
		const prov = p.image_providers && p.image_providers.length
			? p.image_providers.join(', ') : 'default provider';
		this.sub.replaceChildren(h('code', { title: p.id, text: shortId(p.id) }), ' · ',
			`${p.counts.storyboards} storyboards · ${prov} · stage `, badge(stageOf(p)),
			' · imported ', timeEl(p.created_at));
	}

	// asOf: the events seen when the read went out (none: all of them).
	renderTiles(sbs, asOf = this.evSeq) {
		const actions = {
			run: (ids, noCache) => this.start({ storyboard_ids: ids, no_cache: noCache || null }),
			save: (sb, fields) => this.save(sb, fields),
			stale: () => { this.dirty = true; this.lastRefresh = 0; },
		};
		const seen = new Set();
		for (const sb of sbs) {
			seen.add(sb.id);
			const t = this.tiles.get(sb.id);
			if (t) {
				t.update(sb, asOf);
			} else {
				const nt = new Tile(sb, actions);
				nt.setRunLive(this.panel.live);
				this.tiles.set(sb.id, nt);
				this.grid.append(nt.el);
			}
		}
		for (const [sid, t] of this.tiles) {
			if (!seen.has(sid)) {
				t.el.remove();
				this.tiles.delete(sid);
			}
		}
	}

	// The filter buttons, with how many tiles each shows.
	renderChips() {
		const n = { all: 0, failed: 0, missing: 0, completed: 0 };
		for (const t of this.tiles.values()) {
			const s = t.status;
			n.all++;
			if (s === 'failed')
				n.failed++;
			if (s === 'completed')
				n.completed++;
			else
				n.missing++;
		}
		const cur = this.grid.dataset.filter;
		this.chips.replaceChildren(...FILTERS.map(([key, label]) => h('button', {
			type: 'button', class: `chip${key === 'failed' && n.failed ? ' chip-bad' : ''}`,
			'aria-pressed': String(cur === key), 'data-filter': key,
			onclick: () => { this.grid.dataset.filter = key; this.renderChips(); },
		}, label, h('span', { class: 'chip-n', text: String(n[key]) }))));
		this.counts = n;
		this.renderButtons();
	}

	renderButtons() {
		const live = this.panel.live, n = this.counts || {};
		const b = this.buttons;
		b.missing.textContent = `Run missing${n.missing ? ` (${n.missing})` : ''}`;
		b.retry.textContent = `Retry failed${n.failed ? ` (${n.failed})` : ''}`;
		b.all.disabled = live || !n.all;
		b.missing.disabled = live || !n.missing;
		b.retry.disabled = live || !n.failed;
		b.cancel.disabled = !live;
		b.cancel.hidden = !live;
		this.del.disabled = live;
	}

	failedIds() {
		return [...this.tiles.values()].filter((t) => t.status === 'failed').map((t) => t.sb.id);
	}

	// --- data ---

	async refresh() {
		this.dirty = false;
		this.warned = false;
		this.lastRefresh = Date.now();
		const read = ++this.reads, asOf = this.evSeq;
		try {
			const p = await api('GET', `/v1/projects/${this.id}`);
			if (this.gone || read !== this.reads)
				return;
			this.project = p;
			this.renderSub();
			this.renderTiles(p.storyboards, asOf);
			this.renderChips();
		} catch (x) {
			if (!this.gone && x.status === 404)
				this.go('#/');
		}
	}

	async loadRuns(first) {
		let runs;
		try {
			runs = (await api('GET', `/v1/projects/${this.id}/runs`)).runs;
		} catch (x) {
			return;
		}
		if (this.gone)
			return;
		const body = this.history.querySelector('.history-body');
		body.replaceChildren(runs.length ? historyTable(runs)
			: h('p', { class: 'muted', text: 'No run yet.' }));
		this.history.querySelector('summary').textContent = `Run history (${runs.length})`;
		const latest = runs[0];
		if (!latest)
			return;
		const known = this.latestRun;
		this.latestRun = latest.id;
		if (latest.status === 'processing' || latest.status === 'queued') {
			if (!this.follower || this.follower.runId !== latest.id)
				this.follow(latest);
		} else if (!this.panel.live) {
			this.panel.setRun(latest, false);
			if (!first && known !== latest.id)
				this.refresh();
		}
		this.renderButtons();
	}

	// Once a second: a refresh due while a run goes on, or the idle poll.
	tick() {
		if (this.gone || document.hidden)
			return;
		if (this.panel.live)
			this.panel.draw();	// the run's duration goes on
		const since = Date.now() - this.lastRefresh;
		if (this.panel.live && this.dirty &&
		    since >= (this.warned ? WARNED_REFRESH_MS : LIVE_REFRESH_MS))
			this.refresh();
		else if (!this.panel.live && this.dirty && since >= 1000)
			this.refresh();
		if (!this.panel.live && Date.now() - (this.lastPoll || 0) >= IDLE_POLL_MS) {
			this.lastPoll = Date.now();
			this.loadRuns(false);
		}
	}

	// --- the run, live ---

	follow(run) {
		if (this.follower)
			this.follower.close();
		this.panel.setRun(run, true);
		this.setLive(true);
		const f = new Follower(run.id, {
			event: (ev) => this.onEvent(ev),
			state: (s) => { if (this.follower === f) this.setConn(s); },
			lost: () => this.lost(f),
		});
		this.follower = f;
		f.open();
	}

	setLive(on) {
		for (const t of this.tiles.values())
			t.setRunLive(on);
		this.renderChips();
	}

	onEvent(ev) {
		if (this.gone)
			return;
		this.panel.event(ev);
		const t = this.tiles.get(ev.storyboard_id || (ev.storyboard && ev.storyboard.id));
		const seq = ++this.evSeq;
		if (ev.type === 'progress' && t)
			t.started(seq);
		else if (ev.type === 'image_generated' && t)
			t.generated(ev.image, seq);
		else if (ev.type === 'error' && t)
			t.failed(ev.error, seq);
		if (ev.type === 'done') {
			this.finish();
			return;
		}
		this.dirty = true;
		if (ev.type === 'warning')
			this.warned = true;
		this.scheduleChips();
	}

	scheduleChips() {
		if (this.chipsPending)
			return;
		this.chipsPending = true;
		requestAnimationFrame(() => {
			this.chipsPending = false;
			if (!this.gone)
				this.renderChips();
		});
	}

	// After `done`: the stream is closed (Follower), the tiles and the run
	// are read again as stored.
	async finish() {
		const id = this.follower.runId, pn = this.panel;
		toast(`Run ${shortId(id)} ${pn.status}: ${pn.ok} of ${pn.total} images` +
			(pn.bad ? `, ${pn.bad} failed` : ''), pn.bad ? 'error' : 'ok');
		this.setLive(false);
		this.renderButtons();
		await this.refresh();
		try {
			const run = await api('GET', `/v1/runs/${id}`);
			if (!this.gone && !this.panel.live)
				this.panel.setRun(run, false);
		} catch (x) {
			// the panel keeps what `done` said
		}
		await this.loadRuns(false);
	}

	// The stream ended without `done` and will not come back by itself
	// (the service refused it, or went away for good): ask the run.
	async lost(f) {
		let run;
		try {
			run = await api('GET', `/v1/runs/${f.runId}`);
		} catch (x) {
			setTimeout(() => { if (!this.gone && this.follower === f) this.lost(f); }, 3000);
			return;
		}
		if (this.gone || this.follower !== f)
			return;
		if (run.status === 'processing' || run.status === 'queued') {
			const again = new Follower(run.id, f.on);
			again.lastSeq = f.lastSeq;
			this.follower = again;
			setTimeout(() => { if (!this.gone && this.follower === again) again.open(); }, 1000);
		} else {
			f.close();
			this.panel.setRun(run, false);
			this.setLive(false);
			this.refresh();
			this.loadRuns(false);
		}
	}

	// --- actions ---

	async start(body) {
		try {
			const r = await api('POST', `/v1/projects/${this.id}/image-generation`, body);
			const run = await api('GET', `/v1/runs/${r.run_id}`);
			if (this.gone)
				return;
			this.follow(run);
			this.refresh();
			this.loadRuns(false);
		} catch (x) {
			toast(x.status === 422 ? `Nothing to run: ${x.message}` : `Run: ${x.message}`,
				x.status === 422 ? 'info' : 'error');
			// Someone else's run may be the one processing: follow it.
			if (x.status === 409)
				this.loadRuns(false);
		}
	}

	async cancel() {
		this.buttons.cancel.disabled = true;
		try {
			await api('POST', `/v1/projects/${this.id}/image-generation/cancel`, {});
			toast('Cancelling the run…');
		} catch (x) {
			toast(`Cancel: ${x.message}`, 'error');
			this.renderButtons();
		}
	}

	async save(sb, fields) {
		const got = await api('PATCH', `/v1/projects/${this.id}/storyboards/${sb.id}`, fields);
		const t = this.tiles.get(sb.id);
		if (t)
			t.update({ ...t.sb, image_prompt: got.image_prompt,
				negative_prompt: got.negative_prompt, params: got.params });
		toast(`Storyboard ${sb.index}: prompt saved`, 'ok');
		return got;
	}

	async remove() {
		const p = this.project;
		const ok = await confirmDialog(`Delete “${p.name}”?`,
			`Its ${p.counts.storyboards} storyboards, runs and events go, and the image files` +
			' that no other project uses. This cannot be undone.', 'Delete project');
		if (!ok)
			return;
		try {
			await api('DELETE', `/v1/projects/${this.id}`, {});
			toast(`Deleted “${p.name}”`, 'ok');
			this.go('#/');
		} catch (x) {
			toast(`Delete: ${x.message}`, 'error');
		}
	}
}

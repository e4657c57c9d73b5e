// A run as the page follows it: the progress panel (a bar fed by the run's
// Server-Sent Events), and the stream itself.
import { eventsUrl } from './api.js';
import { h, duration, shortId, timeEl } from './dom.js';
import { badge } from './projects.js';

const ACTIVITY_MAX = 200;

// The run's event stream (GET /v1/runs/{id}/events), read with an
// EventSource.  The page closes it at `done`: nothing reconnects after
// the run.  Events are taken once each, by seq, so that a stream opened
// again (it then replays from the start) changes nothing already shown.
export class Follower {
	constructor(runId, handlers) {
		this.runId = runId;
		this.on = handlers;	// {event(ev), state(text), lost()}
		this.lastSeq = 0;
		this.es = null;
		this.closed = false;
	}

	open() {
		const es = new EventSource(eventsUrl(this.runId));
		this.es = es;
		es.onopen = () => this.on.state('live');
		es.onmessage = (m) => this.message(m);
		es.onerror = () => {
			if (this.closed || es !== this.es)
				return;
			if (es.readyState === EventSource.CLOSED) {
				this.on.state('offline');
				this.on.lost();
			} else {
				this.on.state('reconnecting');
			}
		};
	}

	message(m) {
		let ev;
		try {
			ev = JSON.parse(m.data);
		} catch (e) {
			return;
		}
		if (ev.type === 'connected')
			return;
		if (typeof ev.seq === 'number') {
			if (ev.seq <= this.lastSeq)
				return;
			this.lastSeq = ev.seq;
		}
		if (ev.type === 'done')
			this.close();
		this.on.event(ev);
	}

	close() {
		this.closed = true;
		if (this.es)
			this.es.close();
		this.on.state('idle');
	}
}

// The panel above the tiles: the latest run's status, counts, messages and
// progress bar.  Done counts storyboards that ended (an image, or an
// error); the bar is full at `done` unless the run was cancelled.
export class RunPanel {
	constructor() {
		this.run = null;
		this.ok = 0;
		this.bad = 0;
		this.total = 0;
		this.status = null;
		this.finished = new Set();
		this.activity = [];
		this.build();
	}

	build() {
		this.badge = h('span', { class: 'badge' });
		this.title = h('span', { class: 'run-title' });
		this.when = h('span', { class: 'muted run-when' });
		this.numbers = h('span', { class: 'run-numbers' });
		this.okFill = h('span', { class: 'fill ok' });
		this.badFill = h('span', { class: 'fill bad' });
		this.bar = h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': '0',
			'aria-valuemax': '100', 'aria-valuenow': '0', 'aria-label': 'Run progress',
			id: 'run-progress' }, this.okFill, this.badFill);
		// Not a live region: it changes with every storyboard.  The end of a
		// run is announced by a message (project.js).
		this.message = h('p', { class: 'run-message muted' });
		this.logList = h('ol', { class: 'activity-list' });
		this.logSummary = h('summary', { text: 'Activity' });
		this.log = h('details', { class: 'activity', hidden: true }, this.logSummary, this.logList);
		this.el = h('section', { class: 'panel run-panel', 'aria-label': 'Latest run' },
			h('div', { class: 'run-head' }, this.badge, this.title, this.when, this.numbers),
			this.bar, this.message, this.log);
		this.showNone();
	}

	showNone() {
		this.badge.className = 'badge b-not-run';
		this.badge.textContent = 'no run yet';
		this.title.textContent = 'Start a run to generate the images.';
		this.el.dataset.state = 'none';
		this.draw();
	}

	// A run from GET /v1/runs/{id} (or the runs list): its counts as stored.
	setRun(run, live) {
		const same = this.run && this.run.id === run.id;
		this.run = run;
		if (!same) {
			this.finished.clear();
			this.activity = [];
			this.logList.replaceChildren();
			this.message.textContent = '';
		}
		this.total = run.total || 0;
		if (!live || !same) {
			this.ok = run.success_count || 0;
			this.bad = run.failed_count || 0;
		}
		// A run the service queued (it processes workers.max at once)
		// is live too: its stream says when it starts.
		this.status = !live ? run.status : run.status === 'queued' ? 'queued' : 'running';
		this.draw();
	}

	event(ev) {
		switch (ev.type) {
		case 'stage_update':
			if (ev.stage && ev.stage.status === 'queued')
				this.status = 'queued';
			else if (ev.stage && ev.stage.status === 'processing')
				this.status = 'running';
			break;
		case 'progress':
			if (ev.total)
				this.total = ev.total;
			this.note(ev.message, 'info', false);
			break;
		case 'image_generated':
			this.end(ev.storyboard_id, true);
			break;
		case 'error':
			if (ev.storyboard_id)
				this.end(ev.storyboard_id, false);
			this.note(ev.error, 'error', true);
			break;
		case 'warning':
			this.note(ev.message, 'warning', true);
			break;
		case 'info':
			this.note(ev.message, 'info', true);
			break;
		case 'done':
			this.done(ev);
			break;
		default:
			break;
		}
		this.draw();
	}

	end(sid, ok) {
		if (this.finished.has(sid))
			return;
		this.finished.add(sid);
		if (ok)
			this.ok++;
		else
			this.bad++;
	}

	// The run's outcome by the rule of its status (completed, partial,
	// failed); storyboards left without an outcome mean it was cancelled.
	// GET /v1/runs/{id} then gives the status as stored.
	done(ev) {
		const d = ev.data || {};
		this.total = d.total_storyboards ?? this.total;
		this.ok = d.success_count ?? this.ok;
		this.bad = d.failed_count ?? this.bad;
		this.status = this.ok + this.bad < this.total ? 'cancelled'
			: this.bad === 0 ? 'completed' : this.ok === 0 ? 'failed' : 'partial';
		if (this.run) {
			this.run.status = this.status;
			this.run.finished_at = new Date().toISOString();
		}
		this.note(ev.message, ev.success ? 'info' : 'warning', true);
	}

	note(text, kind, keep) {
		if (!text)
			return;
		this.message.textContent = text;
		this.message.dataset.kind = kind;
		if (!keep)
			return;
		this.activity.push({ text, kind, at: new Date() });
		this.logList.prepend(h('li', { class: `act ${kind}` },
			h('time', { text: new Date().toLocaleTimeString() }), ' ', text));
		while (this.logList.children.length > ACTIVITY_MAX)
			this.logList.lastChild.remove();
	}

	draw() {
		const run = this.run;
		if (!run)
			return;
		const t = this.total || 0, n = this.ok + this.bad;
		const pct = this.status === 'queued' ? 0
			: this.status === 'running' || this.status === 'cancelled' ? (t ? (100 * n) / t : 0)
			: 100;
		const slug = (this.status || 'none').replace(/[^a-z]+/g, '-');
		this.el.dataset.state = slug;
		this.badge.className = `badge b-${slug}`;
		this.badge.textContent = this.status;
		this.title.textContent = `Run ${shortId(run.id)}`;
		this.title.title = run.id;
		this.when.replaceChildren(timeEl(run.started_at),
			run.started_at ? ` · ${duration(run.started_at, run.finished_at)}` : '');
		this.numbers.replaceChildren(
			h('strong', { text: `${n}/${t}` }), ' done',
			h('span', { class: 'ok-text', text: ` · ${this.ok} ok` }),
			this.bad ? h('span', { class: 'bad-text', text: ` · ${this.bad} failed` }) : '');
		this.okFill.style.width = t ? `${(pct * this.ok) / Math.max(n, 1)}%` : `${pct}%`;
		this.badFill.style.width = t ? `${(pct * this.bad) / Math.max(n, 1)}%` : '0%';
		const rounded = Math.round(pct);
		this.bar.setAttribute('aria-valuenow', String(rounded));
		this.bar.setAttribute('aria-valuetext',
			`${rounded}%: ${n} of ${t} storyboards done, ${this.bad} failed`);
		this.log.hidden = this.activity.length === 0;
		this.logSummary.textContent = `Activity (${this.activity.length})`;
	}

	get live() {
		return this.status === 'running' || this.status === 'queued';
	}
}

// The project's runs, newest first (GET /v1/projects/{id}/runs).
export function historyTable(runs) {
	return h('table', { class: 'history' },
		h('caption', { class: 'sr-only', text: 'Runs of this project, newest first' }),
		h('thead', {}, h('tr', {}, ['Run', 'Status', 'Storyboards', 'OK', 'Failed', 'Started',
			'Took'].map((c) => h('th', { scope: 'col', text: c })))),
		h('tbody', {}, runs.map((r) => h('tr', {},
			h('td', {}, h('code', { title: r.id, text: shortId(r.id) })),
			h('td', {}, badge(r.status === 'processing' ? 'running' : r.status)),
			h('td', { class: 'num', text: String(r.total) }),
			h('td', { class: 'num', text: String(r.success_count) }),
			h('td', { class: 'num' + (r.failed_count ? ' bad-text' : ''),
				text: String(r.failed_count) }),
			h('td', {}, timeEl(r.started_at)),
			h('td', { class: 'muted', text: r.finished_at
				? duration(r.started_at, r.finished_at) : '…' })))));
}

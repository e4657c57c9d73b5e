// The list of projects (GET /v1/projects, a page at a time) and the import
// of a project file (POST /v1/projects).
import { api } from './api.js';
import { h, clear, shortId, timeEl, toast } from './dom.js';

const PAGE = 50;
const REFRESH_MS = 15000;

// The image_generation stage's status, as the badges name it.
export function stageOf(p) {
	const st = (p.stages || []).find((s) => s.stage_type === 'image_generation');
	if (!st)
		return 'not run';
	return st.status === 'processing' ? 'running' : st.status;
}

export function badge(status, extra) {
	const cls = status.replace(/[^a-z]+/g, '-');
	return h('span', { class: `badge b-${cls}${extra ? ' ' + extra : ''}`, text: status });
}

// A bar in four colours (completed, failed, pending, not started) with the
// numbers beside it: the state of a project at a glance.
export function countsBar(c) {
	const n = c.storyboards || 0;
	const seg = (cls, v) => {
		const s = h('span', { class: `seg ${cls}` });
		s.style.width = n ? `${(100 * v) / n}%` : '0';
		return s;
	};
	return h('div', { class: 'counts' },
		h('div', { class: 'stack', 'aria-hidden': 'true' },
			seg('ok', c.completed), seg('bad', c.failed), seg('wait', c.pending)),
		h('span', { class: 'counts-text' },
			h('strong', { text: `${c.completed}/${n}` }), ' images',
			c.failed ? h('span', { class: 'bad-text', text: ` · ${c.failed} failed` }) : null,
			c.pending ? h('span', { class: 'muted', text: ` · ${c.pending} pending` }) : null));
}

function projectRow(p) {
	const href = `#/projects/${p.id}`;
	const status = stageOf(p);
	return h('tr', { 'data-id': p.id, class: p.counts.failed ? 'has-failed' : '' },
		h('td', { class: 'c-name' },
			h('a', { href, class: 'name', text: p.name || '(unnamed)' }),
			h('code', { class: 'id muted', title: p.id, text: shortId(p.id) })),
		h('td', { class: 'c-counts' }, countsBar(p.counts)),
		h('td', { class: 'c-status' }, badge(status)),
		h('td', { class: 'c-time muted' }, timeEl(latestTime(p))));
}

function latestTime(p) {
	let t = p.updated_at;
	for (const s of p.stages || [])
		for (const v of [s.started_at, s.completed_at])
			if (v && (!t || v > t))
				t = v;
	return t;
}

// The import form: a file chosen or JSON pasted, sent as it is.  The
// service checks it whole and says which storyboard and field is wrong.
function importForm(onDone, onCancel) {
	const err = h('p', { class: 'form-error', role: 'alert' });
	const text = h('textarea', { id: 'import-text', rows: 8, spellcheck: 'false',
		placeholder: '{"name": "Demo", "storyboards": [{"image_prompt": "..."}]}' });
	const file = h('input', { id: 'import-file', type: 'file', accept: '.json,application/json' });
	file.addEventListener('change', async () => {
		err.textContent = '';
		if (file.files.length)
			text.value = await file.files[0].text();
	});
	const submit = h('button', { type: 'submit', class: 'btn primary', text: 'Import' });
	const form = h('form', { class: 'panel import', id: 'import-form', novalidate: true },
		h('h2', { text: 'Import a project file' }),
		h('p', { class: 'muted' }, 'A project file as for ', h('code', { text: 't2istage import' }),
			': a name and its storyboards, each with an ', h('code', { text: 'image_prompt' }),
			'.'),
		h('div', { class: 'field' }, h('label', { for: 'import-file', text: 'Project file' }), file),
		h('div', { class: 'field' },
			h('label', { for: 'import-text', text: 'or paste its JSON' }), text),
		err,
		h('div', { class: 'row end' },
			h('button', { type: 'button', class: 'btn', text: 'Cancel', onclick: onCancel }),
			submit));
	form.addEventListener('submit', async (e) => {
		e.preventDefault();
		err.textContent = '';
		const body = text.value.trim();
		if (!body) {
			err.textContent = 'Choose a file or paste the project JSON.';
			return;
		}
		try {
			JSON.parse(body);
		} catch (x) {
			err.textContent = `This is not JSON: ${x.message}`;
			return;
		}
		submit.disabled = true;
		try {
			const p = await api('POST', '/v1/projects', body);
			toast(`Imported “${p.name}”: ${p.counts.storyboards} storyboards`, 'ok');
			onDone(p);
		} catch (x) {
			err.textContent = x.message;
		} finally {
			submit.disabled = false;
		}
	});
	return form;
}

export function showProjects(main, go) {
	let next = null, loadedPages = 1, timer = null, gone = false;
	const body = h('tbody');
	const more = h('button', { type: 'button', class: 'btn', text: 'Load more', hidden: true });
	const empty = h('div', { class: 'empty', hidden: true },
		h('p', { text: 'No project yet.' }),
		h('p', { class: 'muted', text: 'Import a project file to start.' }));
	const slot = h('div');
	const openImport = () => {
		clear(slot).append(importForm((p) => go(`#/projects/${p.id}`), () => clear(slot)));
		slot.querySelector('textarea').focus();
	};
	const table = h('table', { class: 'projects' },
		h('caption', { class: 'sr-only', text: 'Projects, newest first' }),
		h('thead', {}, h('tr', {},
			h('th', { scope: 'col', text: 'Project' }), h('th', { scope: 'col', text: 'Images' }),
			h('th', { scope: 'col', text: 'Stage' }), h('th', { scope: 'col', text: 'Last activity' }))),
		body);
	clear(main).append(h('section', { class: 'page' },
		h('div', { class: 'page-head' },
			h('h1', { text: 'Projects' }),
			h('div', { class: 'actions' },
				h('button', { type: 'button', class: 'btn', text: 'Refresh',
					onclick: () => load(false) }),
				h('button', { type: 'button', class: 'btn primary', id: 'open-import',
					text: 'Import project', onclick: openImport }))),
		slot, table, empty, h('div', { class: 'row center' }, more)));

	// first: the first page again (a refresh keeps what "Load more" added
	// only when asked for by the button).
	async function load(append) {
		try {
			const q = `limit=${PAGE}` + (append && next ? `&after=${encodeURIComponent(next)}` : '');
			const page = await api('GET', `/v1/projects?${q}`);
			if (gone)
				return;
			if (!append) {
				clear(body);
				loadedPages = 1;
			} else {
				loadedPages++;
			}
			for (const p of page.projects)
				body.append(projectRow(p));
			next = page.next;
			more.hidden = !next;
			empty.hidden = body.children.length > 0;
			table.hidden = body.children.length === 0;
		} catch (x) {
			if (!gone)
				toast(`Projects: ${x.message}`, 'error');
		}
	}
	more.addEventListener('click', () => load(true));
	load(false);
	// A list kept open all day follows new projects and runs; only while it
	// shows the first page, so that a reader's place is kept.
	timer = setInterval(() => {
		if (!document.hidden && loadedPages === 1)
			load(false);
	}, REFRESH_MS);
	return () => {
		gone = true;
		clearInterval(timer);
	};
}

// One storyboard's tile: its image (the signed thumbnail_url, else
// file_url: an <img> sends no header), prompt, status, error, attempts and
// pending provider task, with the actions that concern it alone: retry or
// regenerate it, edit its prompt (then regenerate it).
import { h, clear } from './dom.js';

// What a tile shows, from the storyboard's current image and, during a
// run, what the run's events said last.
function statusOf(image, live, runLive) {
	if (live)
		return live;
	if (!image)
		return 'not started';
	if (image.status === 'pending')
		return runLive ? 'queued' : 'pending';
	if (image.status === 'processing')
		return 'generating';
	return image.status;
}

function taskText(t) {
	const n = t.checkpoints;
	return `Waiting on ${t.provider}'s task` +
		(n ? ` · ${n} checkpoint${n === 1 ? '' : 's'}` : '') +
		(t.created_at ? ` · since ${new Date(t.created_at).toLocaleTimeString()}` : '');
}

export class Tile {
	// actions: {run(ids, noCache), save(sb, fields) -> Promise<sb>}
	constructor(sb, actions) {
		this.sb = sb;
		this.actions = actions;
		this.live = null;	// 'generating', 'completed', 'failed' from events
		this.lastError = null;	// the latest run's error for this storyboard
		this.runLive = false;
		this.touched = 0;	// the page's event count at this tile's last event
		this.imageId = null;
		this.editing = false;
		this.build();
		this.render();
	}

	build() {
		const n = this.sb.index;
		this.img = h('img', { alt: '', decoding: 'async', loading: 'lazy' });
		this.img.addEventListener('error', () => {
			// An expired signature (403) or a file gone: ask for fresh URLs.
			this.imageId = null;
			this.actions.stale();
		});
		this.link = h('a', { class: 'thumb-link', target: '_blank', rel: 'noopener' }, this.img);
		this.placeholder = h('span', { class: 'thumb-empty' });
		this.badge = h('span', { class: 'badge' });
		this.thumb = h('div', { class: 'thumb' }, this.link, this.placeholder, this.badge);
		this.prompt = h('p', { class: 'prompt' });
		this.negative = h('p', { class: 'negative' });
		this.meta = h('p', { class: 'meta' });
		this.error = h('p', { class: 'error-text' });
		this.task = h('p', { class: 'task' });
		this.editBtn = h('button', { type: 'button', class: 'btn small', text: 'Edit prompt',
			'aria-label': `Edit the prompt of storyboard ${n}`, onclick: () => this.openEditor() });
		this.runBtn = h('button', { type: 'button', class: 'btn small',
			onclick: () => this.runSelf() });
		this.actionsRow = h('div', { class: 'tile-actions' }, this.editBtn, this.runBtn);
		this.editor = h('div', { class: 'editor', hidden: true });
		this.el = h('li', { class: 'tile', id: `sb-${this.sb.id}`, 'data-id': this.sb.id },
			this.thumb,
			h('div', { class: 'tile-body' },
				h('div', { class: 'tile-head' },
					h('span', { class: 'idx', text: `#${n}` }), this.meta),
				this.prompt, this.negative, this.error, this.task, this.actionsRow,
				this.editor));
	}

	get status() {
		return statusOf(this.sb.image, this.live, this.runLive);
	}

	// sb as read when the page had seen asOf events: what this tile's
	// later events said of its image stays (else a read that went out
	// before image_generated would draw the previous image again).
	update(sb, asOf = Infinity) {
		if (this.touched > asOf)
			sb = { ...sb, image: this.sb.image };
		this.sb = sb;
		this.render();
	}

	setRunLive(on) {
		this.runLive = on;
		if (!on)
			this.live = null;
		this.render();
	}

	// --- the run's events ---

	started(seq) {
		this.touched = seq;
		this.live = 'generating';
		this.lastError = null;
		this.render();
	}

	generated(image, seq) {
		this.touched = seq;
		const old = this.sb.image || {};
		// What the event does not say (attempts, provider) is read with the
		// project at the end of the run.
		this.sb.image = { ...old, ...image, status: 'completed', error: null,
			attempts: undefined, provider: image.provider || old.provider };
		this.live = 'completed';
		this.lastError = null;
		this.render();
	}

	failed(message, seq) {
		this.touched = seq;
		this.lastError = message;
		const im = this.sb.image;
		// A failed regeneration leaves the previous image current.
		this.live = im && im.status === 'completed' ? 'completed' : 'failed';
		if (this.live === 'failed')
			this.sb.image = { ...(im || {}), status: 'failed', error: message };
		this.render();
	}

	// --- drawing ---

	render() {
		const sb = this.sb, im = sb.image, status = this.status;
		const slug = status.replace(/ /g, '-');
		this.el.dataset.status = slug;
		this.badge.className = `badge b-${slug}`;
		this.badge.textContent = status;
		this.prompt.textContent = sb.image_prompt;
		this.prompt.title = sb.image_prompt;
		this.negative.hidden = !sb.negative_prompt;
		this.negative.textContent = sb.negative_prompt ? `Not: ${sb.negative_prompt}` : '';
		this.renderImage(im, status);
		this.renderMeta(im);
		const err = status === 'failed' ? (im && im.error) || this.lastError : this.lastError;
		this.error.hidden = !err;
		this.error.textContent = err ? (status === 'failed' ? err : `Last run failed: ${err}`) : '';
		const task = im && im.provider_task;
		this.task.hidden = !task;
		this.task.textContent = task ? taskText(task) : '';
		this.renderButtons(status);
	}

	renderImage(im, status) {
		const url = im && im.status === 'completed' && (im.thumbnail_url || im.file_url);
		if (url && im.id !== this.imageId) {
			this.imageId = im.id;
			if (im.width && im.height) {
				this.img.width = im.width;
				this.img.height = im.height;
			}
			this.img.src = url;
			this.img.alt = `Storyboard ${this.sb.index}: ${this.sb.image_prompt}`;
			this.link.href = im.file_url || url;
			this.link.setAttribute('aria-label', `Open the image of storyboard ${this.sb.index}`);
		}
		this.link.hidden = !url;
		this.placeholder.hidden = !!url;
		this.placeholder.textContent = url ? '' : {
			generating: 'Generating…', queued: 'Queued', failed: 'No image',
		}[status] || 'No image yet';
		this.thumb.classList.toggle('busy', status === 'generating');
	}

	renderMeta(im) {
		const bits = [];
		if (im && im.attempts)
			bits.push(`${im.attempts} attempt${im.attempts === 1 ? '' : 's'}`);
		if (im && im.provider)
			bits.push(im.provider);
		if (im && im.cached)
			bits.push('cached');
		if (im && im.width && im.status === 'completed')
			bits.push(`${im.width}×${im.height}`);
		this.meta.textContent = bits.join(' · ');
	}

	renderButtons(status) {
		const label = status === 'failed' ? 'Retry'
			: status === 'completed' ? 'Regenerate' : 'Generate';
		this.runBtn.textContent = label;
		this.runBtn.setAttribute('aria-label', `${label} storyboard ${this.sb.index}`);
		this.runBtn.disabled = this.runLive;
		this.editBtn.disabled = this.runLive || this.editing;
		this.runBtn.title = this.runLive ? 'A run of this project is in progress' : '';
	}

	// A completed image is generated anew (no_cache), else the storyboard
	// is simply run again.
	runSelf() {
		const regen = this.status === 'completed';
		this.actions.run([this.sb.id], regen);
	}

	// --- editing the prompt ---

	openEditor() {
		const id = this.sb.id;
		const err = h('p', { class: 'form-error', role: 'alert' });
		const prompt = h('textarea', { id: `p-${id}`, rows: 4, value: this.sb.image_prompt,
			required: true });
		const neg = h('textarea', { id: `n-${id}`, rows: 2, value: this.sb.negative_prompt || '' });
		const save = async (regen) => {
			err.textContent = '';
			const text = prompt.value.trim();
			if (!text) {
				err.textContent = 'The prompt cannot be empty.';
				prompt.focus();
				return;
			}
			try {
				await this.actions.save(this.sb, { image_prompt: text,
					negative_prompt: neg.value.trim() || null });
				this.closeEditor();
				if (regen)
					await this.actions.run([id], true);
			} catch (x) {
				err.textContent = x.message;
			}
		};
		const form = h('form', { novalidate: true, class: 'edit-form' },
			h('label', { for: `p-${id}`, text: 'Prompt' }), prompt,
			h('label', { for: `n-${id}`, text: 'Negative prompt' }), neg, err,
			h('div', { class: 'row end' },
				h('button', { type: 'button', class: 'btn small', text: 'Cancel',
					onclick: () => this.closeEditor() }),
				h('button', { type: 'button', class: 'btn small', text: 'Save',
					onclick: () => save(false) }),
				h('button', { type: 'submit', class: 'btn small primary',
					text: 'Save and regenerate' })));
		form.addEventListener('submit', (e) => {
			e.preventDefault();
			save(true);
		});
		form.addEventListener('keydown', (e) => {
			if (e.key === 'Escape')
				this.closeEditor();
		});
		clear(this.editor).append(form);
		this.editing = true;
		this.editor.hidden = false;
		this.prompt.hidden = this.negative.hidden = true;
		this.actionsRow.hidden = true;
		prompt.focus();
	}

	closeEditor() {
		this.editing = false;
		this.editor.hidden = true;
		clear(this.editor);
		this.prompt.hidden = false;
		this.actionsRow.hidden = false;
		this.render();
		this.editBtn.focus();
	}
}

// Small DOM helpers.  Text always goes in as text (textContent), never as
// markup: prompts and error messages are the users' and the providers'.

// h('button', {class: 'btn', onclick: fn, 'aria-label': 'x'}, 'text', child...)
export function h(tag, props, ...children) {
	const el = document.createElement(tag);
	for (const [k, v] of Object.entries(props || {})) {
		if (v === undefined || v === null || v === false)
			continue;
		if (k.startsWith('on'))
			el.addEventListener(k.slice(2), v);
		else if (k === 'class')
			el.className = v;
		else if (k === 'text')
			el.textContent = v;
		else if (k === 'value')
			el.value = v;
		else if (k in el && typeof v !== 'string')
			el[k] = v;
		else
			el.setAttribute(k, v === true ? '' : v);
	}
	append(el, children);
	return el;
}

function append(el, children) {
	for (const c of children) {
		if (c === undefined || c === null || c === false)
			continue;
		if (Array.isArray(c))
			append(el, c);
		else
			el.append(c instanceof Node ? c : String(c));
	}
}

export function clear(el) {
	while (el.firstChild)
		el.firstChild.remove();
	return el;
}

// The last 8 hex digits: the service's ids are UUIDv7, whose first digits
// are the creation time, the same for everything made in one minute.
export function shortId(id) {
	return id ? id.slice(-8) : '';
}

// "just now", "5 min ago", "3 h ago", else the date; the exact time is
// the element's title.
export function ago(iso) {
	if (!iso)
		return '';
	const t = Date.parse(iso);
	if (Number.isNaN(t))
		return iso;
	const s = Math.round((Date.now() - t) / 1000);
	if (s < 45)
		return 'just now';
	if (s < 3600)
		return `${Math.round(s / 60)} min ago`;
	if (s < 86400)
		return `${Math.round(s / 3600)} h ago`;
	return new Date(t).toLocaleDateString(undefined, { year: 'numeric', month: 'short',
		day: 'numeric' });
}

export function timeEl(iso) {
	return h('time', { datetime: iso || '', title: iso ? new Date(iso).toLocaleString() : '',
		text: ago(iso) });
}

// "1.2 s", "3 min 4 s" between two ISO times (the second defaults to now).
export function duration(from, to) {
	const a = Date.parse(from), b = to ? Date.parse(to) : Date.now();
	if (Number.isNaN(a) || Number.isNaN(b))
		return '';
	const s = Math.max(0, (b - a) / 1000);
	if (s < 10)
		return `${s.toFixed(1)} s`;
	if (s < 90)
		return `${Math.round(s)} s`;
	const m = Math.floor(s / 60);
	return m < 90 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

// Messages for the user, read out by screen readers (the container is
// aria-live).  Errors stay longer and can be closed.
export function toast(message, kind = 'info') {
	const box = document.getElementById('toasts');
	const t = h('div', { class: `toast ${kind}` },
		h('span', { text: message }),
		h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss',
			onclick: () => t.remove(), text: '×' }));
	box.append(t);
	while (box.children.length > 4)
		box.firstChild.remove();
	setTimeout(() => t.remove(), kind === 'error' ? 12000 : 5000);
}

// A modal yes/no question (the page's own dialog, not window.confirm).
export function confirmDialog(title, text, yes) {
	const dlg = document.getElementById('confirm-dialog');
	document.getElementById('confirm-title').textContent = title;
	document.getElementById('confirm-text').textContent = text;
	document.getElementById('confirm-yes').textContent = yes;
	return new Promise((resolve) => {
		const form = document.getElementById('confirm-form');
		const no = document.getElementById('confirm-no');
		const done = (v) => {
			form.removeEventListener('submit', onYes);
			no.removeEventListener('click', onNo);
			dlg.removeEventListener('cancel', onNo);
			dlg.close();
			resolve(v);
		};
		const onYes = (e) => { e.preventDefault(); done(true); };
		const onNo = (e) => { e.preventDefault(); done(false); };
		form.addEventListener('submit', onYes);
		no.addEventListener('click', onNo);
		dlg.addEventListener('cancel', onNo);
		dlg.showModal();
		no.focus();
	});
}

// The dashboard of `t2istage serve`: boots the page, asks for the token
// when the service has one, and routes between the project list (#/) and
// a project's page (#/projects/ID).
import { ensureToken, forgetToken, hasToken, onTokenNeeded, serviceInfo } from './api.js';
import { h, clear, shortId, toast } from './dom.js';
import { showProject } from './project.js';
import { showProjects } from './projects.js';

const main = document.getElementById('main');
const crumbs = document.getElementById('crumbs');
let dispose = null;
let info = { token_required: false };

// The token prompt: one modal form, which cannot be dismissed while the
// service needs a token (every call waits for it).
function askToken(reason) {
	const dlg = document.getElementById('token-dialog');
	const form = document.getElementById('token-form');
	const input = document.getElementById('token-input');
	const err = document.getElementById('token-error');
	document.getElementById('token-why').textContent = reason;
	err.textContent = '';
	input.value = '';
	return new Promise((resolve) => {
		const cancel = (e) => e.preventDefault();
		const submit = (e) => {
			e.preventDefault();
			const t = input.value.trim();
			if (!t) {
				err.textContent = 'Enter the token.';
				input.focus();
				return;
			}
			form.removeEventListener('submit', submit);
			dlg.removeEventListener('cancel', cancel);
			dlg.close();
			document.getElementById('forget-token').hidden = false;
			resolve(t);
		};
		form.addEventListener('submit', submit);
		dlg.addEventListener('cancel', cancel);
		dlg.showModal();
		input.focus();
	});
}

// The state of the live stream, in the top bar.
function setConn(state) {
	const el = document.getElementById('conn');
	const text = { live: 'live', reconnecting: 'reconnecting…', offline: 'stream lost' }[state];
	el.hidden = !text;
	el.dataset.state = state || '';
	document.getElementById('conn-text').textContent = text || '';
}

function go(hash) {
	if (location.hash === hash)
		route();
	else
		location.hash = hash;
}

function setCrumbs(items) {
	clear(crumbs).append(h('ol', {}, items.map(([text, href], i) => h('li', {},
		href && i < items.length - 1 ? h('a', { href, text })
			: h('span', { 'aria-current': 'page', text })))));
}

function route() {
	if (dispose)
		dispose();
	dispose = null;
	setConn(null);
	const m = /^#\/projects\/([0-9a-fA-F-]{36})$/.exec(location.hash);
	if (m) {
		setCrumbs([['Projects', '#/'], [shortId(m[1]), null]]);
		dispose = showProject(main, m[1].toLowerCase(), go, setConn);
	} else {
		document.title = 't2istage';
		setCrumbs([['Projects', null]]);
		dispose = showProjects(main, go);
	}
	main.focus({ preventScroll: true });
}

async function boot() {
	onTokenNeeded(askToken);
	try {
		info = await serviceInfo();
	} catch (x) {
		clear(main).append(h('p', { class: 'form-error', text: `The service does not answer: ${x.message}` }));
		return;
	}
	const forget = document.getElementById('forget-token');
	forget.hidden = !info.token_required || !hasToken();
	forget.addEventListener('click', async () => {
		forgetToken();
		forget.hidden = true;
		toast('Token forgotten in this tab');
		await ensureToken(info);
		route();
	});
	await ensureToken(info);
	window.addEventListener('hashchange', route);
	route();
}

boot();

// A page of a site the service does not list tries what cross-site request
// forgery can do without reading an answer: form posts (urlencoded, and
// text/plain shaped as JSON) into a hidden frame, no-cors fetches with a
// text/plain body, and CORS fetches that need a preflight.  The test then
// checks, in the database, that none of it started, changed or deleted
// anything.
import { pageAt } from './lib.mjs';

export default async function (context, a) {
	const page = await pageAt(context, a.site);
	return await page.evaluate(async ({ api, project, storyboard }) => {
		const out = {};
		const post = (name, action, enctype, fields) => new Promise((resolve) => {
			const frame = document.createElement('iframe');
			frame.name = name;
			document.body.append(frame);
			const form = document.createElement('form');
			form.method = 'POST';
			form.action = api + action;
			form.enctype = enctype;
			form.target = name;
			for (const [k, v] of Object.entries(fields)) {
				const input = document.createElement('input');
				input.type = 'hidden';
				input.name = k;
				input.value = v;
				form.append(input);
			}
			document.body.append(form);
			frame.onload = () => resolve('loaded');
			form.submit();
		});
		const run = `/v1/projects/${project}/image-generation`;
		out.form_run = await post('f1', run, 'application/x-www-form-urlencoded', { a: '1' });
		// The classic: a text/plain form whose body reads as JSON.
		out.form_json = await post('f2', '/v1/projects', 'text/plain',
			{ '{"name": "x", "storyboards": [{"image_prompt": "a"}], "z": "': '"}' });
		out.form_cancel = await post('f3', run + '/cancel', 'text/plain', { x: '' });
		const noCors = async (path, body) => {
			const r = await fetch(api + path, { method: 'POST', mode: 'no-cors',
				headers: { 'Content-Type': 'text/plain' }, body });
			return r.type;	/* opaque: the page cannot read it, the server must refuse it */
		};
		out.nocors_run = await noCors(run, '{}');
		out.nocors_import = await noCors('/v1/projects',
			'{"name": "x", "storyboards": [{"image_prompt": "a"}]}');
		const cors = async (method, path, body) => {
			try {
				const r = await fetch(api + path, { method,
					headers: { 'Content-Type': 'application/json' }, body });
				return `answered ${r.status}`;
			} catch (e) {
				return e.name;	/* the preflight was refused */
			}
		};
		out.cors_run = await cors('POST', run, '{}');
		out.cors_delete = await cors('DELETE', `/v1/projects/${project}`);
		out.cors_patch = await cors('PATCH', `/v1/projects/${project}/storyboards/${storyboard}`,
			'{"image_prompt": "changed"}');
		return out;
	}, a);
}

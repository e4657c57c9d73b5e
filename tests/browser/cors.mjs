// The same calls from a page of a listed origin and from one that is not
// listed: each call's outcome as the page sees it ("NNN" when it could read
// the answer, the error's name when the browser blocked it).
import { pageAt } from './lib.mjs';

export default async function (context, a) {
	const page = await pageAt(context, a.site);
	return await page.evaluate(async ({ api, token, project }) => {
		const auth = { Authorization: `Bearer ${token}` };
		const json = { ...auth, 'Content-Type': 'application/json' };
		const call = async (method, path, headers, body) => {
			try {
				const r = await fetch(api + path, { method, headers, body });
				const text = await r.text();
				return { status: r.status, body: text ? JSON.parse(text) : null };
			} catch (e) {
				return { blocked: e.name };
			}
		};
		const out = {};
		out.list = await call('GET', '/v1/projects', auth);
		out.import = await call('POST', '/v1/projects', json,
			JSON.stringify({ name: 'from the page', storyboards: [{ image_prompt: 'p' }] }));
		const made = out.import.body && out.import.body.id;
		out.get = await call('GET', `/v1/projects/${made || project}`, auth);
		const sb = out.get.body && out.get.body.storyboards ? out.get.body.storyboards[0].id
			: '00000000-0000-4000-8000-000000000000';
		out.patch = await call('PATCH', `/v1/projects/${made || project}/storyboards/${sb}`,
			json, JSON.stringify({ image_prompt: 'edited in the page' }));
		out.delete = await call('DELETE', `/v1/projects/${made || project}`, json, '{}');
		out.preflight_free_get = await call('GET', '/v1/projects');	/* no token: 401, readable when listed */
		return out;
	}, a);
}

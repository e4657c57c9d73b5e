// One storyboard's prompt edited in its tile and regenerated ("Save and
// regenerate"), another regenerated as it is, and an empty prompt refused
// in the form; against a service without a token (nothing asks for one).
import {
	csp, openDashboard, panel, problems, tiles, unnamed, waitImages, waitState,
} from './dash.mjs';

async function runs(page) {
	return page.$$eval('.history tbody tr', (rs) => rs.length);
}

async function waitNewRun(page, n) {
	await page.waitForFunction((want) => document.querySelectorAll('.history tbody tr').length
		=== want && document.querySelector('.run-panel').dataset.state === 'completed', n,
	{ timeout: 60000, polling: 50 });
}

export default async function (context, a) {
	const out = {};
	const page = await openDashboard(context, a, `#/projects/${a.project}`);
	await page.waitForSelector('.tile');
	await waitImages(page);
	out.asked = await page.$eval('#token-dialog', (d) => d.open);
	out.before = await tiles(page);
	const n = await runs(page);

	// Edit #2 and regenerate it.
	await page.getByRole('button', { name: 'Edit the prompt of storyboard 2' }).click();
	const tile2 = page.locator(`.tile[data-id="${a.edit}"]`);
	await tile2.getByLabel('Prompt', { exact: true }).fill(a.prompt);
	await tile2.getByLabel('Negative prompt').fill('');
	await tile2.getByRole('button', { name: 'Save and regenerate' }).click();
	await waitNewRun(page, n + 1);
	await waitImages(page);
	out.edited = await tiles(page);
	out.editedPanel = await panel(page);

	// Regenerate #1 as it is.
	await page.getByRole('button', { name: 'Regenerate storyboard 1' }).click();
	await waitNewRun(page, n + 2);
	await waitImages(page);
	out.regenerated = await tiles(page);

	// An empty prompt is refused in the form, and Cancel changes nothing.
	await page.getByRole('button', { name: 'Edit the prompt of storyboard 3' }).click();
	const tile3 = page.locator(`.tile[data-id="${a.keep}"]`);
	await tile3.getByLabel('Prompt', { exact: true }).fill('   ');
	await tile3.getByRole('button', { name: 'Save', exact: true }).click();
	out.unnamedEditor = await unnamed(page);
	out.emptyError = await tile3.locator('.form-error').textContent();
	await tile3.getByRole('button', { name: 'Cancel' }).click();
	out.kept = await tile3.locator('.prompt').textContent();
	out.focusAfterCancel = await page.evaluate(() => document.activeElement.textContent);
	out.problems = problems(page);
	out.csp = await csp(page);
	return out;
}

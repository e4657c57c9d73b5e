// A project file imported through the form (chosen as a file), then shown;
// JSON that does not parse, and a project the service refuses, are
// reported in the form and import nothing.
import { csp, openDashboard, problems, tiles, unnamed } from './dash.mjs';

async function openForm(page) {
	await page.getByRole('button', { name: 'Import project' }).click();
	await page.waitForSelector('#import-form');
}

export default async function (context, a) {
	const out = {};
	const page = await openDashboard(context, a);
	await page.waitForSelector('.empty:not([hidden])');
	out.emptyShown = true;
	await openForm(page);
	out.unnamedForm = await unnamed(page);
	await page.setInputFiles('#import-file', a.file);
	await page.waitForFunction(() => document.getElementById('import-text').value.length > 0);
	await page.getByRole('button', { name: 'Import', exact: true }).click();
	await page.waitForFunction(() => location.hash.startsWith('#/projects/'));
	await page.waitForSelector('.tile');
	out.hash = await page.evaluate(() => location.hash);
	out.title = await page.$eval('h1', (e) => e.textContent);
	out.tiles = await tiles(page);
	out.clean = problems(page);

	await page.click('a.brand');
	await page.waitForSelector('table.projects tbody tr');
	await openForm(page);
	await page.getByLabel('or paste its JSON').fill('{"name": "half');
	await page.getByRole('button', { name: 'Import', exact: true }).click();
	out.notJson = await page.$eval('#import-form .form-error', (e) => e.textContent);
	await page.getByLabel('or paste its JSON').fill(a.bad);
	await page.getByRole('button', { name: 'Import', exact: true }).click();
	await page.waitForFunction(() => !/^This is not JSON/.test(
		document.querySelector('#import-form .form-error').textContent)
		&& document.querySelector('#import-form .form-error').textContent !== '');
	out.refused = await page.$eval('#import-form .form-error', (e) => e.textContent);
	out.rows = await page.$$eval('table.projects tbody tr', (rs) => rs.length);
	out.problems = problems(page);
	out.csp = await csp(page);
	return out;
}

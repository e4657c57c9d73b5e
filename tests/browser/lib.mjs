// Helpers of the browser scenarios.

// A page of the origin `site` (a static server the test started), ready to
// run code there.
export async function pageAt(context, site) {
	const page = await context.newPage();
	const problems = [];
	page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
	await page.goto(site + '/', { waitUntil: 'load' });
	page.problems = problems;
	return page;
}

// Resolves once fn(page) is true, polling in the page; fails after ms.
export async function until(page, fn, arg, ms = 60000) {
	await page.waitForFunction(fn, arg, { timeout: ms, polling: 50 });
}

// Drive a webMUSHRA experiment in headless Chromium: report built pages and errors, answer
// every page (first radio of each group, a listener id), send the results.
const puppeteer = require('puppeteer-core');
(async () => {
  const [url, listener] = [process.argv[2], process.argv[3] || 'ann'];
  const browser = await puppeteer.launch({executablePath: '/usr/bin/chromium', headless: 'new',
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--disable-gpu']});
  const page = await browser.newPage();
  const dialogs = [];
  page.on('dialog', async d => { dialogs.push(d.message()); await d.dismiss(); });
  page.on('pageerror', e => dialogs.push('pageerror: ' + e.message));
  await page.goto(url, {waitUntil: 'networkidle0'});
  await page.waitForFunction(() => window.pageManager && pageManager.pages && pageManager.pages.length > 0, {timeout: 20000});
  await new Promise(r => setTimeout(r, 3000));  // audio files load
  const info = await page.evaluate(() => ({
    pages: pageManager.pages.map(p => p.constructor.name),
    errors: $('#popupErrors').text().trim(),
  }));
  console.log('pages:', info.pages.length, JSON.stringify(info.pages.reduce((a, n) => (a[n] = (a[n] || 0) + 1, a), {})));
  console.log('errors:', JSON.stringify(info.errors));
  for (let i = 0; i < info.pages.length - 1; i++) {
    await page.evaluate(() => {
      const groups = {};
      $('input[type=radio]').each(function () { if (!(this.name in groups)) groups[this.name] = this; });
      Object.values(groups).forEach(r => { $(r).prop('checked', true).checkboxradio && $(r).checkboxradio('refresh'); $(r).trigger('click').trigger('change'); });
      pageManager.nextPage();
    });
    await new Promise(r => setTimeout(r, 300));
  }
  const sent = await page.evaluate((listener) => {
    $('#listener').val(listener).trigger('change').trigger('input').trigger('keyup');
    const send = $('button, a, input[type=button]').filter(function () { return /send/i.test($(this).text() || $(this).val()); });
    send.first().prop('disabled', false).removeClass('ui-disabled').trigger('click');
    return send.length;
  }, listener);
  await new Promise(r => setTimeout(r, 2000));
  console.log('send buttons:', sent, 'dialogs:', JSON.stringify(dialogs));
  console.log('final text:', (await page.evaluate(() => $('#page_content').text().replace(/\s+/g, ' ').trim())).slice(0, 200));
  await browser.close();
})().catch(e => { console.error('FAILED', e.message); process.exit(1); });

// Drive a BeaqleJS test in headless Chromium: every set answered (sliders at 60, A chosen),
// then "download results" captured (saveTextAsFile), printed as the downloaded file's text.
const puppeteer = require('puppeteer-core');
(async () => {
  const [url, user] = [process.argv[2], process.argv[3] || 'ann'];
  const browser = await puppeteer.launch({executablePath: '/usr/bin/chromium', headless: 'new',
    args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required', '--disable-gpu']});
  const page = await browser.newPage();
  const problems = [];
  page.on('dialog', async d => { if (!/last test/.test(d.message())) problems.push(d.message()); await d.accept(); });
  page.on('pageerror', e => problems.push('pageerror: ' + e.message));
  await page.goto(url, {waitUntil: 'networkidle0'});
  await page.evaluate(() => { window.saveTextAsFile = (txt, name) => { window.__saved = [name, txt]; }; });
  const n = await page.evaluate(() => { testHandle.startTests(); return testHandle.TestState.TestSequence.length; });
  await new Promise(r => setTimeout(r, 1000));
  for (let i = 0; i < n; i++) {
    await page.evaluate(() => {
      $('.rateSlider').each(function () { $(this).slider('value', 60); });
      $('#selectA').prop('checked', true);
      testHandle.nextTest();
    });
    await new Promise(r => setTimeout(r, 300));
  }
  const errors = await page.evaluate(() => $('body').text().match(/ERROR[^\n]*/g));
  await page.evaluate((user) => { $('#UserName').val(user); testHandle.DownloadTestResults(); }, user);
  const saved = await page.evaluate(() => window.__saved);
  console.error('sets:', n, 'problems:', JSON.stringify(problems), 'load errors:', JSON.stringify(errors), 'file:', saved && saved[0]);
  console.log(saved ? saved[1] : '');
  await browser.close();
})().catch(e => { console.error('FAILED', e.message); process.exit(1); });

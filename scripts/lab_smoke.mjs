#!/usr/bin/env node
// Smoke test of the notebooks as a user sees them: JupyterLab in a real (headless) Chromium,
// through our "rust-multiprocessing" kernel.
//
// What it does:
//   1. copies notebooks/ to a temp dir (the repo's notebooks are never touched) and starts
//      .venv/bin/jupyter lab headless on a free 127.0.0.1 port with a random token, with its own
//      settings, workspaces and runtime dirs; settings overrides turn off the news and update
//      checks and set windowingMode "none" (so cells off screen are rendered too);
//   2. launches Debian's Chromium through playwright-core and, for each notebook checked:
//      opens it, clears the saved outputs, runs all cells with window.jupyterapp.commands
//      (notebook:run-all-cells, or notebook:restart-run-all with the restart dialog accepted),
//      waits until the kernel is idle and every code cell has an execution count;
//   3. checks: no error output in any cell, no stderr output saying "error" or "panicked";
//      00_seed_questions: the Q6 cell shows the four "Process ID: Process-N, Number: k" lines
//      (k = 1..4) and "Process finished in"; screenshot of the Q6 cells -> OUT/q6.png;
//      01_performance: an image/svg+xml output is rendered (decoded, non-zero size);
//      screenshot -> OUT/perf.png;
//   4. the kernel as a Jupyter user expects it (two scratch notebooks written into the temp dir):
//      Run All stops at a failing cell (a `?` error: error output, the cells after it never run);
//      interrupting a long Pool::map with the toolbar's interrupt button ends that cell within a
//      few seconds, and the next cell prints a variable defined before it (needs the crate's
//      interrupt support: the kernel's SIGINT makes the map return Err(Interrupted));
//   4b. a long Pool::map shows a partly filled progress bar mid-run and a summary at the end
//      (screenshots OUT/progress_mid.png, OUT/progress_end.png);
//   5. always shuts the server (and its kernels) and the browser down.
// Exit status 0 when every check passed, 1 on a failed check, 2 on a setup problem.
//
// Prerequisite (the only one besides ./install.sh and a Chromium, e.g. `apt-get install chromium`):
//   npm ci --prefix scripts            # playwright-core, pinned in scripts/package.json
// (./test.sh does both), or playwright-core installed elsewhere, found through either
//   PLAYWRIGHT_CORE=/tmp/labcheck/node_modules/playwright-core   or
//   NODE_PATH=/tmp/labcheck/node_modules
// (scripts/lab_smoke.sh does this for you). playwright-core's own browser download is not
// needed (and does not work here): Chromium is taken from CHROMIUM (default /usr/bin/chromium).
//
// usage: node scripts/lab_smoke.mjs [--out DIR] [--only 00|01|kernel|progress] [--restart] [--keep]
//                                   [--kernel-timeout S] [--run-timeout S]
//   --out DIR          screenshots and, on failure, the server log (default /tmp/labcheck)
//   --only 00|01|kernel  check one notebook only, or only the kernel checks (step 4)
//   --restart          use notebook:restart-run-all (accepting the dialog) instead of
//                      notebook:run-all-cells
//   --keep             keep the temp dir (notebook copies, server log, settings)
//   --kernel-timeout S seconds to wait for the kernel to be idle after opening (default 300)
//   --run-timeout S    seconds to wait for one notebook's run (default 900)
// Environment: CHROMIUM, PLAYWRIGHT_CORE, NODE_PATH, LAB_SMOKE_HEADED=1 (show the browser).

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const T0 = Date.now();
const elapsed = () => ((Date.now() - T0) / 1000).toFixed(1).padStart(6);
const say = (msg) => console.log(`[lab_smoke ${elapsed()}s] ${msg}`);
const warnings = [];
const warn = (msg) => {
    warnings.push(msg);
    console.log(`[lab_smoke ${elapsed()}s] WARNING: ${msg}`);
};

class SetupError extends Error {}
class CheckError extends Error {}

// ----------------------------------------------------------------------------------------------
// Arguments
// ----------------------------------------------------------------------------------------------
const opts = { out: '/tmp/labcheck', only: null, restart: false, keep: false, kernelTimeout: 300, runTimeout: 900 };
{
    const argv = process.argv.slice(2);
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            return argv[++i];
        };
        if (a === '--out') opts.out = path.resolve(value());
        else if (a === '--only') opts.only = value();
        else if (a === '--restart') opts.restart = true;
        else if (a === '--keep') opts.keep = true;
        else if (a === '--kernel-timeout') opts.kernelTimeout = Number(value());
        else if (a === '--run-timeout') opts.runTimeout = Number(value());
        else if (a === '-h' || a === '--help') usage();
        else usage(`unknown argument ${a}`);
    }
    if (opts.only && !['00', '01', 'kernel', 'progress'].includes(opts.only)) usage('--only takes 00, 01, kernel or progress');
    if (!(opts.kernelTimeout > 0) || !(opts.runTimeout > 0)) usage('timeouts are positive seconds');
}
function usage(problem) {
    const text = fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n');
    const start = text.findIndex((l) => l.startsWith('// usage:'));
    const end = text.findIndex((l, i) => i > start && l.startsWith('// Environment:'));
    console.log(text.slice(start, end + 1).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    if (problem) console.error(`\nlab_smoke: ${problem}`);
    process.exit(problem ? 2 : 0);
}

// ----------------------------------------------------------------------------------------------
// Prerequisites
// ----------------------------------------------------------------------------------------------
function loadPlaywright() {
    const require = createRequire(import.meta.url); // honours NODE_PATH, unlike `import`
    const where = process.env.PLAYWRIGHT_CORE || 'playwright-core';
    try {
        return require(where);
    } catch (e) {
        throw new SetupError(
            `cannot load playwright-core (${where}): ${e.code || e.message}.\n` +
                `  Install it once in a scratch dir outside the repo:  mkdir -p /tmp/labcheck && cd /tmp/labcheck && npm install playwright-core\n` +
                `  then run with NODE_PATH=/tmp/labcheck/node_modules (or PLAYWRIGHT_CORE=/tmp/labcheck/node_modules/playwright-core).`
        );
    }
}

const JUPYTER = path.join(REPO, '.venv', 'bin', 'jupyter');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function checkPrerequisites() {
    if (!fs.existsSync(JUPYTER)) throw new SetupError(`${JUPYTER} not found: run ./install.sh first.`);
    if (!fs.existsSync(CHROMIUM))
        throw new SetupError(`${CHROMIUM} not found: install Chromium (Debian: apt-get install chromium) or set CHROMIUM=/path/to/chromium.`);
    const spec = path.join(REPO, '.venv', 'share', 'jupyter', 'kernels', 'rust-multiprocessing', 'kernel.json');
    if (!fs.existsSync(spec)) throw new SetupError(`kernel spec ${spec} not found: run ./install.sh first.`);
}

// ----------------------------------------------------------------------------------------------
// The server
// ----------------------------------------------------------------------------------------------
function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Lab {
    constructor(work) {
        this.work = work;
        this.token = crypto.randomBytes(24).toString('hex');
        this.logFile = path.join(work, 'jupyter-lab.log');
        this.proc = null;
        this.exited = null; // {code, signal} once the server has exited
    }

    async start() {
        const root = path.join(this.work, 'notebooks');
        fs.cpSync(path.join(REPO, 'notebooks'), root, {
            recursive: true,
            filter: (src) => !src.includes('.ipynb_checkpoints'),
        });
        const appSettings = path.join(this.work, 'app-settings');
        fs.mkdirSync(appSettings, { recursive: true });
        fs.writeFileSync(
            path.join(appSettings, 'overrides.json'),
            JSON.stringify(
                {
                    '@jupyterlab/apputils-extension:notification': { fetchNews: 'false', checkForUpdates: false },
                    '@jupyterlab/notebook-extension:tracker': { windowingMode: 'none' },
                },
                null,
                2
            )
        );
        for (const d of ['user-settings', 'workspaces', 'runtime', 'config', 'data']) fs.mkdirSync(path.join(this.work, d));
        this.port = await freePort();
        this.base = `http://127.0.0.1:${this.port}`;
        const cargoBin = path.join(process.env.CARGO_HOME || path.join(os.homedir(), '.cargo'), 'bin');
        const env = {
            ...process.env,
            VIRTUAL_ENV: path.join(REPO, '.venv'),
            PATH: `${path.join(REPO, '.venv', 'bin')}:${cargoBin}:${process.env.PATH}`,
            // The server's own dirs in the temp dir: no state from (or left in) ~/.jupyter.
            JUPYTER_CONFIG_DIR: path.join(this.work, 'config'),
            JUPYTER_RUNTIME_DIR: path.join(this.work, 'runtime'),
            JUPYTER_DATA_DIR: path.join(this.work, 'data'), // kernels are still found in .venv/share/jupyter
        };
        const args = [
            'lab',
            '--no-browser',
            '--ip=127.0.0.1',
            `--port=${this.port}`,
            '--ServerApp.port_retries=0',
            `--IdentityProvider.token=${this.token}`,
            `--ServerApp.root_dir=${root}`,
            '--LabApp.expose_app_in_browser=True',
            `--LabApp.app_settings_dir=${appSettings}`,
            `--LabApp.user_settings_dir=${path.join(this.work, 'user-settings')}`,
            `--LabApp.workspaces_dir=${path.join(this.work, 'workspaces')}`,
        ];
        if (process.getuid && process.getuid() === 0) args.push('--allow-root');
        const log = fs.openSync(this.logFile, 'a');
        say(`starting jupyter lab on port ${this.port} (root_dir ${root}, log ${this.logFile})`);
        // Its own process group, so that a last-resort kill reaches the whole server.
        this.proc = spawn(JUPYTER, args, { env, cwd: root, stdio: ['ignore', log, log], detached: true });
        fs.closeSync(log);
        this.proc.on('exit', (code, signal) => (this.exited = { code, signal }));
        this.proc.on('error', (e) => (this.exited = { code: null, signal: null, error: e }));

        const deadline = Date.now() + 180_000;
        while (Date.now() < deadline) {
            if (this.exited) throw new SetupError(`jupyter lab exited at start (${JSON.stringify(this.exited)}); log:\n${this.logTail()}`);
            try {
                const r = await this.api('GET', '/api/status');
                if (r.ok) {
                    say('server is up');
                    return;
                }
            } catch {
                /* not listening yet */
            }
            await sleep(500);
        }
        throw new SetupError(`jupyter lab did not answer on ${this.base} within 180 s; log:\n${this.logTail()}`);
    }

    api(method, urlPath) {
        return fetch(this.base + urlPath, {
            method,
            headers: { Authorization: `token ${this.token}` },
            signal: AbortSignal.timeout(10_000),
        });
    }

    logTail(lines = 40) {
        try {
            return fs.readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
        } catch {
            return '(no log)';
        }
    }

    async waitExit(ms) {
        const deadline = Date.now() + ms;
        while (!this.exited && Date.now() < deadline) await sleep(200);
        return Boolean(this.exited);
    }

    // Asks the server to shut down (it shuts its kernels down first); then SIGTERM, then SIGKILL.
    async stop() {
        if (!this.proc || this.exited) return;
        let kernels = [];
        try {
            kernels = await (await this.api('GET', '/api/kernels')).json();
        } catch {
            /* ignore */
        }
        say(`stopping the server (${kernels.length} kernel(s) running)`);
        try {
            await this.api('POST', '/api/shutdown');
        } catch (e) {
            warn(`POST /api/shutdown failed: ${e.message}`);
        }
        if (await this.waitExit(30_000)) return this.leftovers(kernels);
        warn('the server did not stop within 30 s of /api/shutdown: SIGTERM');
        try {
            process.kill(-this.proc.pid, 'SIGTERM');
        } catch {
            /* gone */
        }
        if (await this.waitExit(15_000)) return this.leftovers(kernels);
        warn('still running: SIGKILL to its process group');
        try {
            process.kill(-this.proc.pid, 'SIGKILL');
        } catch {
            /* gone */
        }
        await this.waitExit(5_000);
        this.leftovers(kernels);
    }

    // Kernels run in their own sessions (jupyter_client), so check none outlived the server:
    // a process whose command line names one of our kernels' connection files (in our temp dir).
    leftovers(kernels) {
        const runtime = path.join(this.work, 'runtime');
        const found = [];
        for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
            let cmd = '';
            try {
                cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
            } catch {
                continue;
            }
            if (cmd.includes(runtime) && Number(pid) !== process.pid) found.push(Number(pid));
        }
        if (!found.length) return;
        warn(`kernel process(es) ${found.join(', ')} outlived the server (kernels were ${kernels.map((k) => k.id).join(', ')}): SIGKILL`);
        for (const pid of found) {
            try {
                process.kill(pid, 'SIGKILL');
            } catch {
                /* gone */
            }
        }
    }
}

// ----------------------------------------------------------------------------------------------
// The browser side
// ----------------------------------------------------------------------------------------------

// State of the current notebook, read in the page (model for counts/outputs, DOM for what shows).
function pageState() {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    if (!panel || !panel.content || !panel.content.model || !panel.sessionContext) return { ready: false };
    const nb = panel.content;
    const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
    const cells = [];
    nb.widgets.forEach((w, i) => {
        const m = w.model;
        if (m.type !== 'code') return;
        const outputs = [];
        for (let j = 0; j < m.outputs.length; j++) {
            const o = m.outputs.get(j).toJSON();
            outputs.push({
                type: o.output_type,
                name: o.name,
                text: o.output_type === 'stream' ? [].concat(o.text).join('') : undefined,
                ename: o.ename,
                evalue: o.evalue,
                mimes: o.data ? Object.keys(o.data) : undefined,
            });
        }
        const prompt = w.node.querySelector('.jp-InputPrompt');
        cells.push({ index: i, count: m.executionCount, prompt: prompt ? prompt.textContent.trim() : '', outputs, source: m.sharedModel.getSource().slice(0, 400) });
    });
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    return {
        ready: true,
        path: panel.context.path,
        kernelName: panel.sessionContext.kernelDisplayName,
        kernelStatus: panel.sessionContext.kernelDisplayStatus,
        kernelId: kernel ? kernel.id : null,
        indicator: indicator ? indicator.getAttribute('data-status') : null,
        dialogs: [...document.querySelectorAll('.jp-Dialog')].map((d) => d.innerText.replace(/\s+/g, ' ').trim()),
        cells,
        run: window.__labSmoke || null,
    };
}

async function openLab(page, lab) {
    const url = `${lab.base}/lab?reset&token=${lab.token}`;
    say(`opening ${url.replace(lab.token, '<token>')}`);
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 120_000 });
    await page.waitForFunction(() => window.jupyterapp, null, { timeout: 120_000 }).catch(() => {
        throw new CheckError('JupyterLab did not load in the page within 120 s (no window.jupyterapp: is expose_app_in_browser on?)');
    });
    await page.evaluate(() => window.jupyterapp.restored);
    say(`JupyterLab ${await page.evaluate(() => window.jupyterapp.version)} is up in the browser`);
}

async function openNotebook(page, lab, name) {
    say(`${name}: docmanager:open`);
    await page.evaluate((p) => window.jupyterapp.commands.execute('docmanager:open', { path: p }).then(() => null), name);
    // Wait for the notebook and its kernel to be idle.
    const deadline = Date.now() + opts.kernelTimeout * 1000;
    let st = null;
    let lastStatus = '';
    while (Date.now() < deadline) {
        st = await page.evaluate(pageState);
        if (st.ready && st.path === name) {
            if (st.dialogs.length) throw new CheckError(`${name}: a dialog appeared while the kernel started: "${st.dialogs.join(' | ')}"`);
            const status = `${st.kernelName} / ${st.kernelStatus} / indicator ${st.indicator}`;
            if (status !== lastStatus) say(`${name}: kernel ${status}`);
            lastStatus = status;
            if (st.kernelStatus === 'dead' || st.indicator === 'dead') throw new CheckError(`${name}: the kernel died while starting (${status}); server log:\n${lab.logTail()}`);
            // (the toolbar indicator can read "idle" before a kernel is attached: check both)
            if (st.kernelStatus === 'idle' && st.indicator === 'idle' && st.kernelId) break;
        }
        await sleep(1000);
    }
    if (!st || !st.ready || st.kernelStatus !== 'idle' || st.indicator !== 'idle' || !st.kernelId)
        throw new CheckError(`${name}: the kernel was not idle within ${opts.kernelTimeout} s (last: ${lastStatus || 'notebook not open'}); server log:\n${lab.logTail()}`);
    if (st.kernelName !== 'Rust (multiprocessing)') throw new CheckError(`${name}: the notebook runs on kernel "${st.kernelName}", not "Rust (multiprocessing)"`);
    say(`${name}: open, kernel "${st.kernelName}" idle; ${st.cells.length} code cells`);
}

// What a user sees on opening, before running anything: every saved output should show.
// (JupyterLab does not render "unsafe" outputs such as image/svg+xml or text/html of an
// untrusted notebook: such a cell shows nothing until it is re-run or the notebook trusted.)
async function checkSavedOutputs(page, name) {
    const hidden = await page.evaluate(() => {
        const panel = window.jupyterapp.shell.currentWidget;
        const out = [];
        panel.content.widgets.forEach((w, i) => {
            if (w.model.type !== 'code') return;
            const saved = w.model.outputs.length;
            const shown = w.node.querySelectorAll('.jp-OutputArea-output').length;
            if (saved > shown) {
                const mimes = [];
                for (let j = 0; j < saved; j++) {
                    const o = w.model.outputs.get(j).toJSON();
                    if (o.data) mimes.push(...Object.keys(o.data));
                }
                out.push({ index: i, count: w.model.executionCount, saved, shown, mimes: [...new Set(mimes)], trusted: w.model.trusted });
            }
        });
        return out;
    });
    for (const h of hidden)
        warn(
            `${name}: on opening, cell ${h.index} [${h.count}] shows ${h.shown} of its ${h.saved} saved output(s) (${h.mimes.join(', ')}; ` +
                `cell ${h.trusted ? 'trusted' : 'NOT trusted'}): a user sees it empty until it is re-run or the notebook is trusted (jupyter trust)`
        );
}

async function runAll(page, name) {
    // Clear the saved outputs and counts so that every count and output checked comes from this run.
    await page.evaluate(() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs'));
    const cleared = await page.evaluate(pageState);
    const stale = cleared.cells.filter((c) => c.count !== null || c.outputs.length);
    if (stale.length) throw new CheckError(`${name}: clearing outputs left ${stale.length} cell(s) with a count or outputs`);

    const command = opts.restart ? 'notebook:restart-run-all' : 'notebook:run-all-cells';
    say(`${name}: ${command}`);
    await page.evaluate((cmd) => {
        window.__labSmoke = { done: false, result: null, error: null };
        window.jupyterapp.commands.execute(cmd).then(
            (r) => Object.assign(window.__labSmoke, { done: true, result: r === undefined ? null : String(r) }),
            (e) => Object.assign(window.__labSmoke, { done: true, error: String(e && e.message ? e.message : e) })
        );
    }, command);
    if (opts.restart) {
        const accept = page.locator('.jp-Dialog .jp-Dialog-button.jp-mod-accept');
        await accept.waitFor({ timeout: 30_000 }).catch(() => {
            throw new CheckError(`${name}: no restart dialog appeared within 30 s after ${command}`);
        });
        const text = (await page.locator('.jp-Dialog').innerText()).replace(/\s+/g, ' ');
        say(`${name}: dialog "${text}": accepting`);
        await accept.click();
    }

    const deadline = Date.now() + opts.runTimeout * 1000;
    let st = null;
    let lastDone = -1;
    let idleSince = null;
    while (Date.now() < deadline) {
        st = await page.evaluate(pageState);
        const done = st.cells.filter((c) => c.count !== null && !c.prompt.includes('*')).length;
        if (done !== lastDone) say(`${name}: ${done}/${st.cells.length} code cells executed (kernel ${st.indicator})`);
        lastDone = done;
        const unexpectedDialogs = st.dialogs;
        if (unexpectedDialogs.length) throw new CheckError(`${name}: a dialog appeared during the run: "${unexpectedDialogs.join(' | ')}"`);
        if (st.indicator === 'dead' || st.kernelStatus === 'dead') throw new CheckError(`${name}: the kernel died during the run`);
        if (st.run && st.run.error) throw new CheckError(`${name}: ${command} failed: ${st.run.error}`);
        const idle = st.indicator === 'idle';
        idleSince = idle ? (idleSince ?? Date.now()) : null;
        // Done: the command's promise resolved and the kernel is idle, with every cell counted, or
        // idle for 3 s (run-all stops at the first cell error: the rest never get a count).
        if (idle && st.run && st.run.done && (done === st.cells.length || Date.now() - idleSince > 3000)) break;
        await sleep(1000);
    }
    const secs = ((Date.now() - (deadline - opts.runTimeout * 1000)) / 1000).toFixed(1);
    if (!st.run || !st.run.done || st.indicator !== 'idle') throw new CheckError(`${name}: the run did not finish within ${opts.runTimeout} s (kernel ${st.indicator}, ${lastDone}/${st.cells.length} cells)`);
    say(`${name}: run finished in ${secs} s`);
    return st;
}

// Checks common to every notebook: all cells executed, no error output, no alarming stderr.
async function checkOutputs(page, name, st) {
    const problems = [];
    for (const c of st.cells) {
        const where = `cell ${c.index} (${c.source.split('\n')[0].slice(0, 60)})`;
        for (const o of c.outputs) {
            if (o.type === 'error') problems.push(`${where}: error output ${o.ename}: ${(o.evalue || '').slice(0, 300)}`);
        }
    }
    const notRun = st.cells.filter((c) => c.count === null);
    if (notRun.length) problems.push(`${notRun.length} code cell(s) without an execution count: ${notRun.map((c) => c.index).join(', ')}`);
    // What the user sees: stderr areas (stderr streams and error tracebacks both render with this mime).
    const stderr = await page.$$eval('.jp-Notebook .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]', (els) =>
        els.map((e) => {
            const cell = e.closest('.jp-Cell');
            const index = cell ? [...cell.parentElement.children].filter((x) => x.classList.contains('jp-Cell')).indexOf(cell) : -1;
            return { index, text: e.innerText };
        })
    );
    for (const s of stderr) {
        if (/error|panicked/i.test(s.text)) problems.push(`cell ${s.index}: stderr output: ${s.text.trim().slice(0, 400)}`);
        else say(`${name}: note: cell ${s.index} has stderr output: ${s.text.trim().slice(0, 200)}`);
    }
    if (problems.length) throw new CheckError(`${name}:\n  - ${problems.join('\n  - ')}`);
    say(`${name}: all ${st.cells.length} code cells executed (counts ${st.cells[0].count}..${st.cells[st.cells.length - 1].count}), no error output`);
}

const cellLocator = (page, index) => page.locator('.jp-Notebook .jp-Cell').nth(index);

async function checkSeedQuestions(page, name, st) {
    const q6 = st.cells.filter((c) => c.source.includes('Process finished in') && c.source.includes('Process::new'));
    if (q6.length !== 1) throw new CheckError(`${name}: expected one Q6 code cell (with Process::new and "Process finished in"), found ${q6.length}`);
    const cell = cellLocator(page, q6[0].index);
    const shown = await cell.locator('.jp-OutputArea').innerText();
    const lines = shown.split('\n').map((l) => l.trim()).filter(Boolean);
    const procLines = lines.filter((l) => /^Process ID: Process-\d+, Number: \d+$/.test(l));
    const numbers = procLines.map((l) => Number(l.split('Number: ')[1])).sort();
    const problems = [];
    if (procLines.length !== 4 || numbers.join(',') !== '1,2,3,4')
        problems.push(`expected four "Process ID: Process-N, Number: k" lines for k = 1..4, found ${procLines.length}: ${JSON.stringify(procLines)}`);
    if (!lines.some((l) => /^Process finished in [\d.]+ seconds$/.test(l))) problems.push('no "Process finished in ... seconds" line');
    if (problems.length) throw new CheckError(`${name}: Q6 cell ${q6[0].index}: ${problems.join('; ')}\n  shown output:\n${shown}`);
    say(`${name}: Q6 output as expected:\n      ${lines.join('\n      ')}`);

    // Screenshot: from the "## Q6" heading to the Q6 cell when that fits, else the cell alone.
    const heading = await page.evaluate(() =>
        window.jupyterapp.shell.currentWidget.content.widgets.findIndex((w) => w.model.type === 'markdown' && w.model.sharedModel.getSource().startsWith('## Q6'))
    );
    const file = path.join(opts.out, 'q6.png');
    await shootRange(page, heading >= 0 ? heading : q6[0].index, q6[0].index, file);
    say(`${name}: screenshot ${file}`);
}

async function shootRange(page, first, last, file) {
    const all = page.locator('.jp-Notebook .jp-Cell');
    await all.nth(first).evaluate((e) => e.scrollIntoView({ block: 'start' }));
    await sleep(500);
    const a = await all.nth(first).boundingBox();
    const b = await all.nth(last).boundingBox();
    const vp = page.viewportSize();
    if (a && b && b.y + b.height - a.y <= vp.height - a.y) {
        const x = Math.min(a.x, b.x);
        const clip = { x, y: a.y, width: Math.max(a.x + a.width, b.x + b.width) - x, height: b.y + b.height - a.y };
        await page.screenshot({ path: file, clip });
    } else {
        await all.nth(last).screenshot({ path: file });
    }
}

async function checkPerformance(page, name) {
    const svg = page.locator('.jp-Notebook .jp-OutputArea-output[data-mime-type="image/svg+xml"]');
    const n = await svg.count();
    if (!n) throw new CheckError(`${name}: no image/svg+xml output was rendered`);
    const out = svg.first();
    await out.scrollIntoViewIfNeeded();
    const info = await out.evaluate(async (e) => {
        const img = e.querySelector('img');
        if (img) {
            try {
                await img.decode();
            } catch {
                /* reported below */
            }
            return { tag: 'img', complete: img.complete, w: img.naturalWidth, h: img.naturalHeight, shownW: img.clientWidth, shownH: img.clientHeight };
        }
        const s = e.querySelector('svg');
        return s ? { tag: 'svg', complete: true, w: s.clientWidth, h: s.clientHeight, shownW: s.clientWidth, shownH: s.clientHeight } : { tag: 'none' };
    });
    if (info.tag === 'none' || !info.complete || !(info.w > 0 && info.h > 0 && info.shownW > 0 && info.shownH > 0))
        throw new CheckError(`${name}: the image/svg+xml output did not render as a picture: ${JSON.stringify(info)}`);
    const fit = await out.evaluate((e) => ({ area: e.clientWidth, content: e.scrollWidth, window: window.innerWidth, overflow: getComputedStyle(e).overflowX }));
    if (fit.content > fit.area + 1)
        warn(`${name}: the chart (${info.shownW} px wide) is wider than its output area (${fit.area} px in a ${fit.window} px window with the file browser open; overflow-x: ${fit.overflow}): its right part is ${['auto', 'scroll'].includes(fit.overflow) ? 'out of view until the output is scrolled sideways' : 'cut off'}`);
    const file = path.join(opts.out, 'perf.png');
    await out.screenshot({ path: file });
    say(`${name}: ${n} image/svg+xml output(s); the chart renders as <${info.tag}> ${info.w}x${info.h} (shown ${info.shownW}x${info.shownH}); screenshot ${file}`);
}

// ----------------------------------------------------------------------------------------------
// The kernel as a Jupyter user expects it (step 4)
// ----------------------------------------------------------------------------------------------

// Writes a notebook of code cells into the server's root (the temp copy, never the repo).
function writeScratchNotebook(name, sources) {
    const nb = {
        cells: sources.map((source, i) => ({ cell_type: 'code', id: `cell-${i}`, source, metadata: {}, outputs: [], execution_count: null })),
        metadata: {
            kernelspec: { name: 'rust-multiprocessing', display_name: 'Rust (multiprocessing)', language: 'rust' },
            language_info: { name: 'Rust' },
        },
        nbformat: 4,
        nbformat_minor: 5,
    };
    fs.writeFileSync(path.join(lab.work, 'notebooks', name), JSON.stringify(nb, null, 1));
}

async function closeNotebook(page) {
    await page.evaluate(async () => {
        const panel = window.jupyterapp.shell.currentWidget;
        await panel.sessionContext.shutdown();
        panel.context.model.dirty = false;
        panel.dispose();
    });
}

// Runs cell `index` (as a click on "Run this cell" would) without waiting for it.
async function startCell(page, index) {
    await page.evaluate((i) => {
        const panel = window.jupyterapp.shell.currentWidget;
        panel.content.activeCellIndex = i;
        window.jupyterapp.commands.execute('notebook:run-cell');
    }, index);
}

// Waits until cell `index` has an execution count, no `*` prompt, and the kernel is idle.
async function waitCell(page, name, index, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        const st = await page.evaluate(pageState);
        const c = st.cells.find((x) => x.index === index);
        if (c && c.count !== null && !c.prompt.includes('*') && st.indicator === 'idle') return { st, cell: c };
        if (st.indicator === 'dead') throw new CheckError(`${name}: the kernel died`);
        await sleep(250);
    }
    throw new CheckError(`${name}: cell ${index} did not finish within ${timeoutMs / 1000} s`);
}

async function checkRunAllStops(page) {
    const name = 'kernel_run_all_stops.ipynb';
    writeScratchNotebook(name, ['let defined_before = 7u32;\nprintln!("first cell ran");', 'let n: u32 = "not a number".parse()?;', 'println!("the cell after the failure ran");']);
    await openNotebook(page, lab, name);
    const st = await runAll(page, name);
    const [first, failing, after] = st.cells;
    const problems = [];
    if (first.count === null || first.outputs.some((o) => o.type === 'error')) problems.push(`the first cell did not run cleanly: ${JSON.stringify(first)}`);
    const error = failing.outputs.find((o) => o.type === 'error');
    if (!error) problems.push(`the failing cell shows no error output: ${JSON.stringify(failing)}`);
    if (after.count !== null || after.outputs.length) problems.push(`the cell after the failing one ran: ${JSON.stringify(after)}`);
    if (problems.length) throw new CheckError(`${name}: Run All did not stop at the failing cell: ${problems.join('; ')}`);
    say(`${name}: Run All stopped at the failing cell (${error.ename}: ${error.evalue}); the cell after it has no count`);
    await closeNotebook(page);
}

async function checkInterruptKeepsVariables(page) {
    const name = 'kernel_interrupt.ipynb';
    writeScratchNotebook(name, [
        'fn slow(x: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(500)); x }\nlet pool = Pool::new(2)?;\nlet kept = 42u64;',
        'let v = pool.map(slow, 0..400u64)?;\nprintln!("{}", v.len());',
        'println!("kept = {kept}");',
    ]);
    await openNotebook(page, lab, name);
    await startCell(page, 0);
    await waitCell(page, name, 0, 300_000);
    await startCell(page, 1);
    // Until the map runs (its cell compiled, the workers busy), then a little longer.
    await sleep(2000);
    for (let i = 0; i < 120; i++) {
        const st = await page.evaluate(pageState);
        if (st.indicator === 'busy') break;
        await sleep(500);
    }
    await sleep(3000);
    const button = page.locator('.jp-NotebookPanel-toolbar [data-command="notebook:interrupt-kernel"]').first();
    const clickedAt = Date.now();
    if (await button.count()) await button.click();
    else {
        warn(`${name}: no toolbar interrupt button found: using the notebook:interrupt-kernel command`);
        await page.evaluate(() => window.jupyterapp.commands.execute('notebook:interrupt-kernel'));
    }
    const { cell: interrupted } = await waitCell(page, name, 1, 60_000);
    const tookS = ((Date.now() - clickedAt) / 1000).toFixed(1);
    const error = interrupted.outputs.find((o) => o.type === 'error');
    if (!error) throw new CheckError(`${name}: the interrupted cell shows no error: ${JSON.stringify(interrupted)}`);
    say(`${name}: interrupt from the toolbar: cell ended ${tookS} s after the click with ${error.ename}: ${(error.evalue || '').split('\n')[0]}`);
    await startCell(page, 2);
    const { cell: next } = await waitCell(page, name, 2, 120_000);
    const text = next.outputs.filter((o) => o.type === 'stream').map((o) => o.text).join('');
    if (!text.includes('kept = 42'))
        throw new CheckError(`${name}: after the interrupt, the next cell does not print the variable defined before it: ${JSON.stringify(next.outputs)}`);
    say(`${name}: after the interrupt the next cell prints "${text.trim()}"`);
    await closeNotebook(page);
}

// A long Pool::map shows its progress bar while it runs (partly filled, screenshot
// OUT/progress_mid.png) and a one-line summary at the end (OUT/progress_end.png) (issue 12).
async function checkProgress(page) {
    const name = 'kernel_progress.ipynb';
    writeScratchNotebook(name, [
        'fn slow(x: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(40)); x }\nlet pool = Pool::new(2)?;',
        'let v = pool.map(slow, 0..200u64)?;\nprintln!("{} results", v.len());',
    ]);
    await openNotebook(page, lab, name);
    await startCell(page, 0);
    await waitCell(page, name, 0, 300_000);
    await startCell(page, 1);
    const outputText = () =>
        page.evaluate(() => {
            const w = window.jupyterapp.shell.currentWidget.content.widgets[1];
            const area = w.node.querySelector('.jp-OutputArea');
            return area ? area.innerText : '';
        });
    // The bar appears after ~1 s of the map; wait until it shows some tasks done, not all.
    let mid = '';
    for (let i = 0; i < 240; i++) {
        mid = await outputText();
        const m = mid.match(/(\d+)\/200 tasks/);
        if (m && Number(m[1]) > 20 && Number(m[1]) < 180) break;
        await sleep(100);
    }
    const m = mid.match(/(\d+)\/200 tasks/);
    if (!m) throw new CheckError(`${name}: no progress display while the map ran; output: ${JSON.stringify(mid)}`);
    const cellNode = page.locator('.jp-Notebook .jp-Cell').nth(1);
    const midFile = path.join(opts.out, 'progress_mid.png');
    await cellNode.screenshot({ path: midFile });
    say(`${name}: mid-map the cell shows ${JSON.stringify(mid.split('\n')[0])}; screenshot ${midFile}`);
    const { cell } = await waitCell(page, name, 1, 120_000);
    const end = await outputText();
    if (!/map: 200 tasks in /.test(end)) throw new CheckError(`${name}: the display did not end as the summary: ${JSON.stringify(end)}`);
    if (cell.outputs.some((o) => o.type === 'error')) throw new CheckError(`${name}: the map failed: ${JSON.stringify(cell.outputs)}`);
    const endFile = path.join(opts.out, 'progress_end.png');
    await cellNode.screenshot({ path: endFile });
    say(`${name}: at the end the cell shows ${JSON.stringify(end.replace(/\s+/g, ' ').trim())}; screenshot ${endFile}`);
    await closeNotebook(page);
}

// ----------------------------------------------------------------------------------------------
// Main
// ----------------------------------------------------------------------------------------------
let lab = null;
let browser = null;
let work = null;
let cleaning = null;

async function cleanup() {
    if (cleaning) return cleaning;
    cleaning = (async () => {
        if (browser) await browser.close().catch((e) => warn(`closing the browser: ${e.message}`));
        if (lab) await lab.stop().catch((e) => warn(`stopping the server: ${e.message}`));
    })();
    return cleaning;
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, async () => {
        warn(`${sig}: stopping`);
        await cleanup();
        process.exit(130);
    });
}

async function main() {
    checkPrerequisites();
    const { chromium } = loadPlaywright();
    fs.mkdirSync(opts.out, { recursive: true });
    for (const f of ['q6.png', 'perf.png']) fs.rmSync(path.join(opts.out, f), { force: true });
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'lab_smoke-'));
    lab = new Lab(work);
    await lab.start();

    say(`launching ${CHROMIUM}`);
    browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: process.env.LAB_SMOKE_HEADED !== '1',
        // playwright gives it a fresh temporary --user-data-dir
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        timeout: 120_000,
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    const consoleErrors = [];
    const outside = new Set();
    page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('request', (r) => {
        const u = new URL(r.url());
        if (!['127.0.0.1', 'localhost'].includes(u.hostname) && !['data:', 'blob:'].includes(u.protocol)) outside.add(`${u.protocol}//${u.host}`);
    });

    await openLab(page, lab);
    const notebooks = [
        ['00', '00_seed_questions.ipynb', checkSeedQuestions],
        ['01', '01_performance.ipynb', checkPerformance],
    ].filter(([id]) => !opts.only || opts.only === id);
    // (--only kernel / progress: no notebook from notebooks/, only the checks below)
    for (const [, name, check] of notebooks) {
        await openNotebook(page, lab, name);
        await checkSavedOutputs(page, name);
        const st = await runAll(page, name);
        await checkOutputs(page, name, st);
        await check(page, name, st);
        // Shut its kernel down and close it (unsaved: the copy is thrown away) before the next one.
        await page.evaluate(async () => {
            const panel = window.jupyterapp.shell.currentWidget;
            await panel.sessionContext.shutdown();
            panel.context.model.dirty = false;
            panel.dispose();
        });
        say(`${name}: kernel shut down, notebook closed`);
    }
    if (!opts.only || opts.only === 'kernel') {
        await checkRunAllStops(page);
        await checkInterruptKeepsVariables(page);
    }
    if (!opts.only || opts.only === 'progress') await checkProgress(page);
    if (consoleErrors.length) warn(`browser console errors (not failures):\n  ${consoleErrors.slice(0, 10).join('\n  ')}`);
    if (outside.size) warn(`the page tried to reach hosts other than the server: ${[...outside].join(', ')}`);
}

let status = 0;
try {
    await main();
    say(`PASSED (${((Date.now() - T0) / 1000).toFixed(0)} s)${warnings.length ? `, with ${warnings.length} warning(s):\n  - ${warnings.join('\n  - ')}` : ''}`);
} catch (e) {
    status = e instanceof CheckError ? 1 : 2;
    const kind = e instanceof CheckError ? 'FAILED' : e instanceof SetupError ? 'SETUP PROBLEM' : 'ERROR';
    console.error(`[lab_smoke ${elapsed()}s] ${kind}: ${e instanceof CheckError || e instanceof SetupError ? e.message : e.stack || e}`);
    if (lab && fs.existsSync(lab.logFile)) {
        try {
            fs.mkdirSync(opts.out, { recursive: true });
            fs.copyFileSync(lab.logFile, path.join(opts.out, 'jupyter-lab.log'));
            console.error(`[lab_smoke] server log: ${path.join(opts.out, 'jupyter-lab.log')}`);
        } catch {
            /* ignore */
        }
    }
} finally {
    await cleanup();
    if (work && !opts.keep) fs.rmSync(work, { recursive: true, force: true });
    else if (work) say(`kept ${work}`);
}
process.exit(status);

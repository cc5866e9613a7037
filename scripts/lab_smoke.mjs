#!/usr/bin/env node
// The notebooks as a user sees them: JupyterLab in a real (headless) Chromium runs every
// notebook in notebooks/ through our "rust-multiprocessing" kernel.
//
// What it does:
//   1. copies notebooks/ to a temp dir (the repo's notebooks are never touched) and starts
//      .venv/bin/jupyter lab headless on a free 127.0.0.1 port with a random token, with its own
//      settings, workspaces and runtime dirs; settings overrides turn off the news and update
//      checks and set windowingMode "none" (so cells off screen are rendered too); the copies are
//      trusted, as ./lab.sh trusts the notebooks (saved SVG charts show on opening);
//   2. launches Debian's Chromium through playwright-core and, for each notebook (file name
//      order): opens it (a fresh kernel), clears the saved outputs, runs all cells with
//      window.jupyterapp.commands (notebook:run-all-cells, or notebook:restart-run-all with the
//      restart dialog accepted), waits until the kernel is idle and every code cell has an
//      execution count, and times the run;
//   3. checks what the user sees, against the notebook's saved outputs and cell tags:
//      - every code cell ran; the run took at most --max-run-seconds (default 60);
//      - error outputs only in cells tagged raises-exception, and each such cell does fail (an
//        error output, or, from a kernel that answers "ok" to a panic or a `?` error, stderr);
//      - stderr only where the saved run had stderr too (children that panic on purpose) or the
//        cell is tagged raises-exception; elsewhere stderr saying "error" or "panicked" fails;
//      - cells whose output is compared (not tagged nbval-ignore-output): the stdout shown is the
//        saved stdout, both through kernel/client/sanitize.cfg (pids, timings), as sorted lines
//        for cells tagged unordered-output;
//      - every rich output saved (SVG charts, HTML, text results) is shown again, an SVG as a
//        decoded picture of non-zero size;
//      - the key outputs listed for the notebook in KEY_OUTPUTS below are on screen;
//      then a screenshot of the notebook's key cells -> OUT/<notebook>.png;
//   4. the kernel as a Jupyter user expects it (two scratch notebooks written into the temp dir):
//      Run All stops at a failing cell (a `?` error: error output, the cells after it never run);
//      interrupting a long Pool::map with the toolbar's interrupt button ends that cell within a
//      few seconds, and the next cell prints a variable defined before it;
//   4b. a long Pool::map shows a partly filled progress bar mid-run and a summary at the end
//      (screenshots OUT/progress_mid.png, OUT/progress_end.png);
//   5. always shuts the server (and its kernels) and the browser down.
// Ends with a table: each notebook, its kernel start and its run time. Exit status 0 when every
// check passed, 1 on a failed check, 2 on a setup problem.
//
// Prerequisite (the only one besides ./install.sh and a Chromium, e.g. `apt-get install chromium`):
//   npm ci --prefix scripts            # playwright-core, pinned in scripts/package.json
// (./test.sh does both), or playwright-core installed elsewhere, found through either
//   PLAYWRIGHT_CORE=/tmp/labcheck/node_modules/playwright-core   or
//   NODE_PATH=/tmp/labcheck/node_modules
// (scripts/lab_smoke.sh does this for you). playwright-core's own browser download is not
// needed (and does not work here): Chromium is taken from CHROMIUM (default /usr/bin/chromium).
//
// usage: node scripts/lab_smoke.mjs [--out DIR] [--only PREFIX[,PREFIX...]] [--restart] [--keep]
//                                   [--kernel-timeout S] [--run-timeout S] [--max-run-seconds S]
//   --out DIR          screenshots and, on failure, the server log (default /tmp/labcheck)
//   --only 00,07       check only the notebooks whose file name starts with one of these
//                      (`kernel`, `progress`: the checks of step 4, 4b; without --only, everything)
//   --restart          use notebook:restart-run-all (accepting the dialog) instead of
//                      notebook:run-all-cells
//   --keep             keep the temp dir (notebook copies, server log, settings)
//   --kernel-timeout S seconds to wait for the kernel to be idle after opening (default 300)
//   --run-timeout S    seconds to wait for one notebook's run (default 900)
//   --max-run-seconds S  a notebook whose run takes longer fails (default 60; 0: no limit)
// Environment: CHROMIUM, PLAYWRIGHT_CORE, NODE_PATH, LAB_SMOKE_HEADED=1 (show the browser).

import { spawn, spawnSync } from 'node:child_process';
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
const opts = { out: '/tmp/labcheck', only: [], restart: false, keep: false, kernelTimeout: 300, runTimeout: 900, maxRunSeconds: 60 };
{
    const argv = process.argv.slice(2);
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) usage(`${a} needs a value`);
            return argv[++i];
        };
        if (a === '--out') opts.out = path.resolve(value());
        else if (a === '--only') opts.only.push(...value().split(',').filter(Boolean));
        else if (a === '--max-run-seconds') opts.maxRunSeconds = Number(value());
        else if (a === '--restart') opts.restart = true;
        else if (a === '--keep') opts.keep = true;
        else if (a === '--kernel-timeout') opts.kernelTimeout = Number(value());
        else if (a === '--run-timeout') opts.runTimeout = Number(value());
        else if (a === '-h' || a === '--help') usage();
        else usage(`unknown argument ${a}`);
    }
    if (!(opts.kernelTimeout > 0) || !(opts.runTimeout > 0) || !(opts.maxRunSeconds >= 0)) usage('timeouts are positive seconds');
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
                    // recordTiming: each cell's execution times in its metadata (the run's end, below).
                    '@jupyterlab/notebook-extension:tracker': { windowingMode: 'none', recordTiming: true },
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
        // As ./lab.sh does: trust the saved outputs (our own runs), or JupyterLab hides the saved
        // SVG charts until their cells run again (checkSavedOutputs warns about what stays hidden).
        const copies = fs.readdirSync(root).filter((f) => f.endsWith('.ipynb')).map((f) => path.join(root, f));
        const trust = spawnSync(JUPYTER, ['trust', ...copies], { env, encoding: 'utf8', timeout: 120_000 });
        if (trust.status !== 0) warn(`jupyter trust failed (${trust.status}): ${(trust.stderr || '').trim().slice(0, 300)}`);
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
        const tags = m.getMetadata('tags') || [];
        const timing = m.getMetadata('execution') || {};
        const ended = Date.parse(timing['iopub.status.idle'] || timing['shell.execute_reply'] || '') || null;
        cells.push({ index: i, count: m.executionCount, prompt: prompt ? prompt.textContent.trim() : '', outputs, tags, ended, source: m.sharedModel.getSource().slice(0, 400) });
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
    const started = Date.now();
    await page.evaluate((cmd) => {
        window.__labSmoke = { done: false, result: null, error: null, doneAt: null };
        window.jupyterapp.commands.execute(cmd).then(
            (r) => Object.assign(window.__labSmoke, { done: true, doneAt: Date.now(), result: r === undefined ? null : String(r) }),
            (e) => Object.assign(window.__labSmoke, { done: true, doneAt: Date.now(), error: String(e && e.message ? e.message : e) })
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
    if (!st.run || !st.run.done || st.indicator !== 'idle') throw new CheckError(`${name}: the run did not finish within ${opts.runTimeout} s (kernel ${st.indicator}, ${lastDone}/${st.cells.length} cells)`);
    // The run ended when the last cell did (JupyterLab's recorded timing), not when this loop last
    // looked; nor when the command's promise settled: it settles at the first error reply, even
    // when the cells after a cell tagged raises-exception go on running.
    const ends = st.cells.map((c) => c.ended).filter(Boolean);
    const end = ends.length ? Math.max(...ends) : st.run.doneAt || Date.now();
    st.runSeconds = (end - started) / 1000;
    say(`${name}: run finished in ${st.runSeconds.toFixed(1)} s`);
    return st;
}

// The saved notebook, as the checks need it: per cell index, its tags and saved outputs.
function savedCells(name) {
    const nb = JSON.parse(fs.readFileSync(path.join(REPO, 'notebooks', name), 'utf8'));
    const text = (t) => [].concat(t ?? []).join('');
    return nb.cells.map((c, index) => {
        const outputs = c.outputs || [];
        return {
            index,
            type: c.cell_type,
            source: text(c.source),
            tags: (c.metadata && c.metadata.tags) || [],
            stdout: outputs.filter((o) => o.output_type === 'stream' && o.name === 'stdout').map((o) => text(o.text)).join(''),
            stderr: outputs.filter((o) => o.output_type === 'stream' && o.name === 'stderr').map((o) => text(o.text)).join(''),
            errors: outputs.filter((o) => o.output_type === 'error').length,
            rich: outputs.filter((o) => o.data).map((o) => Object.keys(o.data)),
        };
    });
}

// kernel/client/sanitize.cfg (the Rust notebook runner's rules: pids, timings, ...), applied in order.
let sanitizeRules = null;
function sanitize(text) {
    if (!sanitizeRules) {
        sanitizeRules = [];
        let pending = null;
        for (const raw of fs.readFileSync(path.join(REPO, 'kernel', 'client', 'sanitize.cfg'), 'utf8').split('\n')) {
            const line = raw.trim();
            if (line.startsWith('regex:')) pending = new RegExp(line.slice(6).trim(), 'g');
            else if (line.startsWith('replace:') && pending) {
                sanitizeRules.push([pending, line.slice(8).trim()]);
                pending = null;
            }
        }
    }
    for (const [re, by] of sanitizeRules) text = text.replace(re, by);
    return text;
}

// Text as compared: sanitized, each line without trailing blanks, empty lines dropped, sorted if asked.
function comparableLines(text, sorted) {
    const lines = sanitize(text)
        .split('\n')
        .map((l) => l.trimEnd())
        .filter((l) => l.length);
    return sorted ? lines.sort() : lines;
}

const TAG_RAISES = 'raises-exception';
const TAG_IGNORE = 'nbval-ignore-output';
const TAG_UNORDERED = 'unordered-output';
// For each saved rich output, what JupyterLab renders (its richest MIME type we know).
const MIME_ORDER = ['image/svg+xml', 'image/png', 'text/html', 'text/markdown', 'text/plain'];

// What the user sees in each code cell, read from the DOM: text per output MIME type and rendered pictures.
async function visibleCells(page) {
    return page.evaluate(async () => {
        const panel = window.jupyterapp.shell.currentWidget;
        const out = {};
        const widgets = panel.content.widgets;
        for (let i = 0; i < widgets.length; i++) {
            const w = widgets[i];
            if (w.model.type !== 'code') continue;
            const cell = { stdout: '', stderr: '', mimes: [], pictures: [] };
            for (const o of w.node.querySelectorAll('.jp-OutputArea-output')) {
                const mime = o.getAttribute('data-mime-type') || '';
                cell.mimes.push(mime);
                if (mime === 'application/vnd.jupyter.stdout') cell.stdout += o.innerText.endsWith('\n') ? o.innerText : o.innerText + '\n';
                if (mime === 'application/vnd.jupyter.stderr') cell.stderr += o.innerText + '\n';
                if (mime.startsWith('image/')) {
                    const img = o.querySelector('img');
                    const svg = o.querySelector('svg');
                    if (img) {
                        try {
                            await img.decode();
                        } catch {
                            /* reported as not complete */
                        }
                        cell.pictures.push({ mime, complete: img.complete, w: img.naturalWidth, h: img.naturalHeight, shownW: img.clientWidth, shownH: img.clientHeight, area: o.clientWidth, content: o.scrollWidth });
                    } else if (svg) cell.pictures.push({ mime, complete: true, w: svg.clientWidth, h: svg.clientHeight, shownW: svg.clientWidth, shownH: svg.clientHeight, area: o.clientWidth, content: o.scrollWidth });
                    else cell.pictures.push({ mime, complete: false, w: 0, h: 0, shownW: 0, shownH: 0 });
                }
            }
            out[i] = cell;
        }
        return out;
    });
}

// Checks common to every notebook: every cell ran, errors only where tagged, stderr only where
// the saved run had it, compared stdout as saved, rich outputs shown again.
async function checkOutputs(page, name, st, saved) {
    const problems = [];
    const notes = [];
    const shown = await visibleCells(page);
    let failingOnPurpose = 0;
    // Stock evcxr reads a cell's stderr on a thread of its own and may send it after the cell went
    // idle (evcxr #353), stamped with the request it is handling by then: under Run All, the next
    // cell's. So a `?` error's message can show under the next cell. That is what the user sees, so
    // it is reported (a warning naming both cells), but not failed: the kernel fixes it (errors as
    // error replies, all of a cell's stderr before it goes idle), and then the check is exact.
    const stderrOfEarlierCell = new Set();
    for (const [k, c] of st.cells.entries()) {
        if (!(c.tags || []).includes(TAG_RAISES) || c.count === null) continue;
        const v = shown[c.index];
        const s = saved[c.index];
        const next = st.cells[k + 1];
        if (!v || !next || c.outputs.some((o) => o.type === 'error') || v.stderr.trim() || !s || !s.stderr.trim()) continue;
        const first = comparableLines(s.stderr, false)[0];
        const nv = shown[next.index];
        const ns = saved[next.index];
        if (first && nv && comparableLines(nv.stderr, false).includes(first) && !(ns && ns.stderr.includes(first))) {
            stderrOfEarlierCell.add(next.index);
            c.failureShownBelow = next.index;
            warn(`${name}: cell ${c.index} (tagged ${TAG_RAISES}) fails, but its error shows under the next code cell, ${next.index}: the kernel sent the cell's stderr after the cell had gone idle (evcxr #353)`);
        }
    }
    for (const c of st.cells) {
        const s = saved[c.index];
        const v = shown[c.index] || { stdout: '', stderr: '', mimes: [], pictures: [] };
        const where = `cell ${c.index} (${c.source.split('\n')[0].slice(0, 60)})`;
        const tags = c.tags || [];
        const raises = tags.includes(TAG_RAISES);
        if (c.count === null) continue; // reported below
        const errorOutputs = c.outputs.filter((o) => o.type === 'error');
        if (raises) {
            failingOnPurpose++;
            if (!errorOutputs.length && !v.stderr.trim() && c.failureShownBelow === undefined)
                problems.push(`${where}: tagged ${TAG_RAISES}, but it shows no error (no error output, no stderr)`);
        } else {
            for (const o of errorOutputs) problems.push(`${where}: error output ${o.ename}: ${(o.evalue || '').slice(0, 300)}`);
            if (v.stderr.trim() && !stderrOfEarlierCell.has(c.index)) {
                if (s && s.stderr.trim()) notes.push(`cell ${c.index} shows stderr, as in the saved run: ${v.stderr.trim().split('\n')[0].slice(0, 120)}`);
                else if (/error|panicked/i.test(v.stderr)) problems.push(`${where}: stderr output the saved run did not have: ${v.stderr.trim().slice(0, 400)}`);
                else notes.push(`cell ${c.index} shows stderr: ${v.stderr.trim().slice(0, 120)}`);
            }
        }
        if (!s) continue;
        if (!tags.includes(TAG_IGNORE)) {
            const unordered = tags.includes(TAG_UNORDERED);
            const want = comparableLines(s.stdout, unordered);
            const got = comparableLines(v.stdout, unordered);
            if (want.join('\n') !== got.join('\n'))
                problems.push(`${where}: stdout shown differs from the saved output\n      saved:\n        ${want.join('\n        ')}\n      shown:\n        ${got.join('\n        ')}`);
        }
        for (const mimes of s.rich) {
            const mime = MIME_ORDER.find((m) => mimes.includes(m)) || mimes[0];
            if (!v.mimes.includes(mime)) problems.push(`${where}: the saved ${mime} output is not shown (shown: ${v.mimes.join(', ') || 'nothing'})`);
        }
        for (const p of v.pictures) {
            if (!p.complete || !(p.w > 0 && p.h > 0 && p.shownW > 0 && p.shownH > 0)) problems.push(`${where}: the ${p.mime} output did not render as a picture: ${JSON.stringify(p)}`);
            else if (p.content > p.area + 1) warn(`${name} ${where}: the picture (${p.shownW} px wide) is wider than its output area (${p.area} px)`);
        }
    }
    const notRun = st.cells.filter((c) => c.count === null);
    if (notRun.length) problems.push(`${notRun.length} code cell(s) without an execution count: ${notRun.map((c) => c.index).join(', ')}`);
    for (const n of notes) say(`${name}: note: ${n}`);
    if (problems.length) throw new CheckError(`${name}:\n  - ${problems.join('\n  - ')}`);
    say(`${name}: all ${st.cells.length} code cells executed (counts ${st.cells[0].count}..${st.cells[st.cells.length - 1].count}); errors only in the ${failingOnPurpose} cell(s) tagged ${TAG_RAISES}; stdout of compared cells as saved; rich outputs shown`);
    return shown;
}

// Key outputs per notebook (file name prefix): what must be on screen, each a regex matched
// against one code cell's visible text (stdout and stderr); the first key's cell (and the heading
// above it) is the notebook's screenshot. A notebook not listed gets the generic checks only, and
// a screenshot of its first code cell with a picture, or else with output.
const KEY_OUTPUTS = {
    '00_': [/Process finished in [\d.]+ seconds/, /\[1, 8, 27, 64, 125\]/, /\[1, 4, 9, 16, 25\]/],
    '01_': ['svg', /python 2 threads: .* speedup/],
    '02_': [/the child that segfaults ended with exit code -11/, /the child that aborts ended with exit code -6/, /the child that panics ended with exit code 1/, /the parent is still running/],
    '03_': [/child, after writing half: .*Private_Dirty/, /parent: numbers = \[1, 2, 3\] after the child/, /parent: numbers = \[1, 2, 3, 4\] after the thread/],
    '04_': [/100 processes: /, /compute, 8 processes: /, /wait, pool of 2 workers: /],
    '05_': ['svg', /chunksize\s+1000:/],
    '06_': [/gathered on rank 0: \[1229, 2262/, /the same: true/, /task 12 panicked on rank 3/, /mpirun: exit status: 137/, /start-up: MPI takes \d+ times as long as the pool/],
    '07_': [/lost \d+ of 400000 increments/, /with the lock around each increment: 400000 of 400000/, /round trips to a process through a Pipe/, /still running after/, /got None, the agreed end/],
    '08_': [/the three went through within [\d.]+ ms of each other/, /released at [\d.]+ ms, [\d.]+ ms after set\(\)/, /Semaphore\(2\): at most 2 queries at once/, /taken at [\d.]+ ms/, /in all: 9592 primes below 100000/, /the child ended with exit code -6/, /acquired again: locked\(\) = true/],
    '09_': [/nap\(100\) finished, seen at/, /future 3: this future was cancelled before it ran/, /and the executor goes on: a new submit gives 10/],
    '10_': ['svg', /imap_unordered\s+[\d.]+ s/, /the 20 s map returned after [\d.]+ s/, /pool1 after the interrupt: 20 tasks of 20 ms/],
};

async function checkKeyOutputs(page, name, st, shown) {
    const prefix = Object.keys(KEY_OUTPUTS).find((p) => name.startsWith(p));
    const keys = prefix ? KEY_OUTPUTS[prefix] : [];
    const problems = [];
    let first = null;
    for (const key of keys) {
        const cell = st.cells.find((c) => {
            const v = shown[c.index];
            if (!v) return false;
            if (key === 'svg') return v.pictures.some((p) => p.mime === 'image/svg+xml' && p.w > 0);
            return key.test(v.stdout + v.stderr);
        });
        if (!cell) problems.push(`no cell shows ${key === 'svg' ? 'an SVG picture' : key}`);
        else if (first === null) first = cell.index;
    }
    if (problems.length) throw new CheckError(`${name}: key outputs missing:\n  - ${problems.join('\n  - ')}`);
    if (keys.length) say(`${name}: the ${keys.length} key output(s) are on screen`);
    if (first === null) {
        const withPicture = st.cells.find((c) => shown[c.index] && shown[c.index].pictures.length);
        const withOutput = st.cells.find((c) => shown[c.index] && shown[c.index].mimes.length);
        first = (withPicture || withOutput || st.cells[0]).index;
    }
    return first;
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
}

// Screenshot from the markdown heading above `index` (the nearest cell starting with '#') to
// the cell itself when that fits the notebook's panel, else less (see shootRange).
async function shootKeyCell(page, index, file) {
    const heading = await page.evaluate((last) => {
        const widgets = window.jupyterapp.shell.currentWidget.content.widgets;
        for (let i = last; i >= 0; i--) {
            const w = widgets[i];
            if (w.model.type === 'markdown' && w.model.sharedModel.getSource().trimStart().startsWith('#')) return i;
        }
        return last;
    }, index);
    await shootRange(page, heading, index, file);
}

async function shootRange(page, first, last, file) {
    // Only the cells of the range are shown (the others hidden for the moment) and the notebook's
    // panel is scrolled to its top, so that nothing moves while the picture is taken (a scrolled
    // panel can jump back when the screenshot is taken). Measured once the layout holds still.
    const measure = async (start) => {
        let previous = null;
        for (let attempt = 0; attempt < 10; attempt++) {
            const now = await page.evaluate(
                async ([s, l]) => {
                    const cells = [...document.querySelectorAll('.jp-Notebook .jp-Cell')];
                    cells.forEach((c, i) => (c.style.display = i < s || i > l ? 'none' : ''));
                    let box = cells[s].parentElement;
                    while (box && !['auto', 'scroll'].includes(getComputedStyle(box).overflowY)) box = box.parentElement;
                    if (box) box.scrollTop = 0;
                    await Promise.all([...document.querySelectorAll('.jp-Notebook img')].map((img) => img.decode().catch(() => null)));
                    const r = (box || document.documentElement).getBoundingClientRect();
                    const rect = (e) => {
                        const b = e.getBoundingClientRect();
                        return { x: b.x, y: b.y, width: b.width, height: b.height };
                    };
                    return { bottom: Math.min(r.bottom, window.innerHeight), a: rect(cells[s]), b: rect(cells[l]) };
                },
                [start, last]
            );
            if (previous && JSON.stringify(previous) === JSON.stringify(now)) return now;
            previous = now;
            await sleep(300);
        }
        return previous;
    };
    try {
        // From `first` if all fits, else from the cell just above `last`, else `last` alone (as
        // much of it as shows).
        let m = null;
        for (const start of [...new Set([first, Math.max(first, last - 1), last])]) {
            m = await measure(start);
            if (m.b.y + m.b.height <= m.bottom) break;
        }
        const { a, b } = m;
        const x = Math.min(a.x, b.x);
        const clip = { x, y: a.y, width: Math.max(a.x + a.width, b.x + b.width) - x, height: Math.min(b.y + b.height, m.bottom) - a.y };
        await page.screenshot({ path: file, clip });
    } finally {
        await page.evaluate(() => document.querySelectorAll('.jp-Notebook .jp-Cell').forEach((c) => (c.style.display = '')));
    }
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
    const context = await browser.newContext({ viewport: { width: 1280, height: 1200 } });
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
    const names = fs
        .readdirSync(path.join(REPO, 'notebooks'))
        .filter((f) => f.endsWith('.ipynb'))
        .filter((f) => !opts.only.length || opts.only.some((p) => f.startsWith(p)))
        .sort();
    const kernelChecks = !opts.only.length || opts.only.includes('kernel');
    const progressCheck = !opts.only.length || opts.only.includes('progress');
    if (!names.length && !kernelChecks && !progressCheck) throw new SetupError(`no notebook in ${path.join(REPO, 'notebooks')} matches --only ${opts.only.join(',')}`);
    for (const f of names) fs.rmSync(path.join(opts.out, f.replace(/\.ipynb$/, '.png')), { force: true });
    const failures = [];
    const table = [];
    for (const name of names) {
        const row = { name, start: null, run: null, cells: null, verdict: 'FAILED' };
        table.push(row);
        try {
            const t0 = Date.now();
            await openNotebook(page, lab, name);
            row.start = (Date.now() - t0) / 1000;
            await checkSavedOutputs(page, name);
            const saved = savedCells(name);
            const st = await runAll(page, name);
            row.run = st.runSeconds;
            row.cells = st.cells.length;
            const shown = await checkOutputs(page, name, st, saved);
            if (name.startsWith('00_')) await checkSeedQuestions(page, name, st);
            const key = await checkKeyOutputs(page, name, st, shown);
            const file = path.join(opts.out, name.replace(/\.ipynb$/, '.png'));
            await shootKeyCell(page, key, file);
            say(`${name}: screenshot of cell ${key} -> ${file}`);
            if (opts.maxRunSeconds > 0 && st.runSeconds > opts.maxRunSeconds)
                throw new CheckError(`${name}: the run took ${st.runSeconds.toFixed(1)} s, more than ${opts.maxRunSeconds} s`);
            row.verdict = 'ok';
        } catch (e) {
            if (!(e instanceof CheckError)) throw e;
            console.error(`[lab_smoke ${elapsed()}s] FAILED: ${e.message}`);
            failures.push(e.message);
        }
        // Shut its kernel down and close it (unsaved: the copy is thrown away) before the next one.
        await page.evaluate(async () => {
            const panel = window.jupyterapp.shell.currentWidget;
            if (!panel || !panel.sessionContext) return;
            await panel.sessionContext.shutdown();
            panel.context.model.dirty = false;
            panel.dispose();
        });
        say(`${name}: kernel shut down, notebook closed`);
    }
    const fmt = (x) => (x === null ? '-' : `${x.toFixed(1)} s`);
    say(`summary (kernel start = opening until the kernel is idle; run = Run All until every cell has run):\n` +
        `      notebook                              cells  kernel start       run  verdict\n` +
        table.map((r) => `      ${r.name.padEnd(36)} ${String(r.cells ?? '-').padStart(6)} ${fmt(r.start).padStart(13)} ${fmt(r.run).padStart(9)}  ${r.verdict}`).join('\n'));
    if (kernelChecks) {
        await checkRunAllStops(page);
        await checkInterruptKeepsVariables(page);
    }
    if (progressCheck) await checkProgress(page);
    if (failures.length) throw new CheckError(`${failures.length} of ${names.length} notebook(s) failed:\n${failures.join('\n')}`);
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

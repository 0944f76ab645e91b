// A real OpenID Connect provider (the `oidc-provider` package) for crudauth's tests.
//
// Listens on 127.0.0.1 only. Configured from a JSON file (`--config PATH` or OIDC_PROVIDER_CONFIG)
// and `--port N` / OIDC_PROVIDER_PORT (0, the default, picks a free port). Once listening it
// prints one JSON line on stdout, {"issuer": ..., "port": ...}; everything else goes to stderr.
// It exits when stdin closes or when the parent process is gone, so a test run that dies never
// leaves it behind.
//
// Config file shape:
//   {"clients": [{"client_id", "client_secret", "redirect_uris": [...],
//                 "token_endpoint_auth_method": "client_secret_basic" | "client_secret_post"}],
//    "accounts": [{"sub", "email", "email_verified", "name", "password", "login"?}],
//    "conform_id_token_claims": false}
// The login form accepts an account's `login` (its email when absent) and its password.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const HOST = '127.0.0.1';

function log(event, fields = {}) {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
}

function readOptions() {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      port: { type: 'string' },
      'parent-pid': { type: 'string' },
      'no-stdin-watch': { type: 'boolean', default: false },
    },
  });
  const configPath = values.config ?? process.env.OIDC_PROVIDER_CONFIG;
  const config = configPath ? JSON.parse(fs.readFileSync(configPath, 'utf8')) : {};
  const port = Number(values.port ?? process.env.OIDC_PROVIDER_PORT ?? config.port ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`invalid port: ${port}`);
  }
  const parentPid = Number(values['parent-pid'] ?? process.ppid);
  return { config, port, parentPid, watchStdin: !values['no-stdin-watch'] };
}

// Exit with the parent: stdin is the parent's pipe (EOF when it dies, even by SIGKILL), and the
// parent pid is polled for the case where stdin is not a pipe.
function watchParent(parentPid, watchStdin) {
  const leave = (why) => {
    log('exit', { why });
    process.exit(0);
  };
  if (watchStdin) {
    process.stdin.on('end', () => leave('stdin closed'));
    process.stdin.on('close', () => leave('stdin closed'));
    process.stdin.resume();
  }
  const startPpid = process.ppid;
  setInterval(() => {
    try {
      process.kill(parentPid, 0);
    } catch {
      leave('parent gone');
    }
    // A reused pid would pass kill(0); a changed ppid means our parent died.
    if (parentPid === startPpid && process.ppid !== startPpid) leave('reparented');
  }, 500).unref();
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => leave(signal));
}

function accountsByLogin(accounts) {
  const byLogin = new Map();
  const bySub = new Map();
  for (const account of accounts) {
    for (const field of ['sub', 'email', 'password']) {
      if (typeof account[field] !== 'string' || !account[field]) {
        throw new Error(`account needs a string ${field}: ${JSON.stringify(account)}`);
      }
    }
    byLogin.set(account.login ?? account.email, account);
    bySub.set(account.sub, account);
  }
  return { byLogin, bySub };
}

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>`
    + '<meta name="viewport" content="width=device-width"></head>'
    + `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

function loginPage(uid, clientId, error) {
  const warning = error ? `<p role="alert" id="error">${escapeHtml(error)}</p>` : '';
  return page(`Sign in to ${clientId}`, `${warning}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" data-prompt="login">
<label>Login <input name="login" autocomplete="username" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit" id="sign-in">Sign in</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort" data-prompt="abort">
<button type="submit" id="cancel">Cancel</button>
</form>`);
}

function consentPage(uid, clientId, scopes) {
  return page(`Authorize ${clientId}`, `<p>${escapeHtml(clientId)} asks for: `
    + `<span id="scopes">${escapeHtml(scopes.join(' '))}</span></p>
<form method="post" action="/interaction/${escapeHtml(uid)}/confirm" data-prompt="consent">
<button type="submit" id="allow">Allow</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort" data-prompt="abort">
<button type="submit" id="deny">Deny</button>
</form>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// The grant the consent screen approves: exactly what the interaction reports as missing.
async function approve(provider, interaction) {
  const { prompt: { details }, params, session, grantId } = interaction;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
  if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return { consent: { grantId: await grant.save() } };
}

function interactions(provider, accounts) {
  const route = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?$/;
  return async (ctx, next) => {
    const match = route.exec(ctx.path);
    if (!match) return next();
    ctx.set('Cache-Control', 'no-store');
    const [, uid, action] = match;
    let interaction;
    try {
      interaction = await provider.interactionDetails(ctx.req, ctx.res);
    } catch (error) {
      // An expired or foreign interaction (no cookie): say so instead of a bare 500.
      log('interaction.error', { uid, error: error?.message ?? String(error) });
      ctx.status = error?.statusCode ?? 400;
      ctx.type = 'html';
      ctx.body = page('Error', `<pre id="error">${escapeHtml(error?.message ?? error)}</pre>`);
      return undefined;
    }
    if (interaction.uid !== uid) ctx.throw(400, 'interaction mismatch');
    const { prompt, params } = interaction;
    if (!action) {
      if (ctx.method !== 'GET') ctx.throw(405);
      ctx.type = 'html';
      ctx.body = prompt.name === 'login'
        ? loginPage(uid, params.client_id)
        : consentPage(uid, params.client_id, String(params.scope ?? '').split(' '));
      return undefined;
    }
    if (ctx.method !== 'POST') ctx.throw(405);
    const form = await readForm(ctx.req);
    let result;
    if (action === 'abort') {
      result = { error: 'access_denied', error_description: 'End-User aborted interaction' };
    } else if (action === 'login') {
      if (prompt.name !== 'login') ctx.throw(400, 'not a login prompt');
      const account = accounts.byLogin.get(form.get('login') ?? '');
      const password = Buffer.from(form.get('password') ?? '');
      if (!account || !crypto.timingSafeEqual(
        crypto.hash('sha256', password, 'buffer'),
        crypto.hash('sha256', account.password, 'buffer'),
      )) {
        log('login.refused', { uid, login: form.get('login') });
        ctx.status = 401;
        ctx.type = 'html';
        ctx.body = loginPage(uid, params.client_id, 'Invalid login or password.');
        return undefined;
      }
      log('login.accepted', { uid, sub: account.sub });
      result = { login: { accountId: account.sub } };
    } else {
      if (prompt.name !== 'consent') ctx.throw(400, 'not a consent prompt');
      result = await approve(provider, interaction);
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
      mergeWithLastSubmission: false,
    });
    ctx.status = 303;
    ctx.redirect(returnTo);
    return undefined;
  };
}

function claimsOf(account) {
  const claims = { sub: account.sub, email: account.email };
  claims.email_verified = account.email_verified ?? false;
  if (account.name !== undefined) claims.name = account.name;
  return claims;
}

function providerConfiguration(config, accounts) {
  const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const jwk = { ...signingKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };
  return {
    clients: (config.clients ?? []).map((client) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...client,
    })),
    jwks: { keys: [jwk] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    scopes: ['openid', 'email', 'profile'],
    conformIdTokenClaims: Boolean(config.conform_id_token_claims ?? false),
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      dPoP: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      resourceIndicators: { enabled: false },
      userinfo: { enabled: true },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    // Over plain http on loopback: no Secure flag, Lax, short lives.
    cookies: {
      keys: [crypto.randomBytes(32).toString('base64url')],
      long: { httpOnly: true, sameSite: 'lax', maxAge: 3600 * 1000 },
      short: { httpOnly: true, sameSite: 'lax', maxAge: 600 * 1000 },
    },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    clientBasedCORS: () => false,
    async findAccount(ctx, sub) {
      const account = accounts.bySub.get(sub);
      if (!account) return undefined;
      return { accountId: sub, claims: async () => claimsOf(account) };
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Error', `<pre id="error">${escapeHtml(JSON.stringify(out))}</pre>`);
    },
  };
}

function logEvents(provider) {
  provider.on('server_error', (ctx, error) => log('server_error', { error: String(error?.stack ?? error) }));
  for (const event of ['authorization.error', 'grant.error', 'userinfo.error', 'jwks.error',
    'discovery.error', 'introspection.error']) {
    provider.on(event, (ctx, error) => log(event, {
      error: error?.error ?? String(error), description: error?.error_description,
      detail: error?.error_detail ?? error?.cause?.message,
    }));
  }
  provider.on('authorization.success', (ctx, out) => log('authorization.success', { keys: Object.keys(out) }));
  provider.on('grant.success', () => log('grant.success'));
  provider.on('interaction.started', (ctx, prompt) => log('interaction.started', { prompt: prompt.name }));
}

async function main() {
  const { config, port, parentPid, watchStdin } = readOptions();
  watchParent(parentPid, watchStdin);
  const accounts = accountsByLogin(config.accounts ?? []);
  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, resolve);
  });
  const issuer = `http://${HOST}:${server.address().port}`;
  const provider = new Provider(issuer, providerConfiguration(config, accounts));
  logEvents(provider);
  provider.use(interactions(provider, accounts));
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer, port: server.address().port })}\n`);
  log('listening', { issuer });
}

main().catch((error) => {
  log('fatal', { error: String(error?.stack ?? error) });
  process.exit(1);
});

// supabase-js, unchanged, through a whole account life against TutorApp's /auth/v1.
// Driven by tests/gotrue/test_supabase_js.py: what only the server side knows (the
// emailed link or code, a TOTP code) is asked for on stdout and answered on stdin,
// one JSON object per line; the last line printed is {"result": ...}.
import { createClient } from '@supabase/supabase-js'
import { createInterface } from 'node:readline'
import ws from 'ws'

const [url, anonKey, email, password] = process.argv.slice(2)
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const ask = async (question) => {
  process.stdout.write(JSON.stringify({ ask: question }) + '\n')
  return JSON.parse((await lines.next()).value).answer
}
const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString())
const fail = (step, error) => {
  throw new Error(`${step}: ${error?.code} ${error?.message}`)
}

// Node 20 has no global WebSocket: supabase-js documents passing `ws` for realtime.
const supabase = createClient(url, anonKey, {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: ws },
})
const events = []
supabase.auth.onAuthStateChange((event) => { events.push(event) })
const result = {}

const signedUp = await supabase.auth.signUp({
  email, password, options: { data: { display_name: 'Js Flow', time_zone: 'Europe/Paris' } },
})
if (signedUp.error) fail('signUp', signedUp.error)
result.signUp = { session: signedUp.data.session, email: signedUp.data.user.email,
  metadata: signedUp.data.user.user_metadata }

const early = await supabase.auth.signInWithPassword({ email, password })
result.unconfirmed = { status: early.error.status, code: early.error.code }

const confirmed = await supabase.auth.verifyOtp({
  type: 'signup', token_hash: await ask({ link: 'auth/verify_email', email }),
})
if (confirmed.error) fail('verifyOtp signup', confirmed.error)
result.confirmed = confirmed.data.user.email_confirmed_at !== undefined
await supabase.auth.signOut()

const wrong = await supabase.auth.signInWithPassword({ email, password: 'not the password' })
result.wrong = { name: wrong.error.name, status: wrong.error.status, code: wrong.error.code,
  message: wrong.error.message }

const signedIn = await supabase.auth.signInWithPassword({ email, password })
if (signedIn.error) fail('signInWithPassword', signedIn.error)
const first = signedIn.data.session
const token = claims(first.access_token)
result.token = { role: token.role, aal: token.aal, appRole: token.app_metadata.role,
  amr: token.amr.map((m) => m.method), email: token.email, aud: token.aud }

const user = await supabase.auth.getUser()
result.getUser = user.data.user.id === token.sub
const me = await fetch(`${url}/api/v1/me`, {
  headers: { Authorization: `Bearer ${first.access_token}` },
})
result.ourApi = { status: me.status, email: (await me.json()).email }

const refreshed = await supabase.auth.refreshSession()
if (refreshed.error) fail('refreshSession', refreshed.error)
result.refresh = {
  rotated: refreshed.data.session.refresh_token !== first.refresh_token,
  amrKept: JSON.stringify(claims(refreshed.data.session.access_token).amr) ===
    JSON.stringify(token.amr),
}
const reused = await supabase.auth.refreshSession({ refresh_token: 'not-a-refresh-token' })
result.unknownRefresh = { status: reused.error.status, code: reused.error.code }

const enrolled = await supabase.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'laptop' })
if (enrolled.error) fail('mfa.enroll', enrolled.error)
result.qr = enrolled.data.totp.qr_code.startsWith('data:image/svg+xml;utf-8,<svg')
const verified = await supabase.auth.mfa.challengeAndVerify({
  factorId: enrolled.data.id, code: await ask({ totp: enrolled.data.totp.secret }),
})
if (verified.error) fail('mfa.challengeAndVerify', verified.error)
const level = await supabase.auth.mfa.getAuthenticatorAssuranceLevel()
result.mfa = { aal: claims(verified.data.access_token).aal, current: level.data.currentLevel,
  next: level.data.nextLevel }
const factors = await supabase.auth.mfa.listFactors()
result.factors = factors.data.totp.map((f) => f.status)

const sent = await supabase.auth.signInWithOtp({ email, options: { shouldCreateUser: false } })
if (sent.error) fail('signInWithOtp', sent.error)
const byCode = await supabase.auth.verifyOtp({
  email, type: 'email', token: await ask({ code: email }),
})
if (byCode.error) fail('verifyOtp email', byCode.error)
const otpToken = claims(byCode.data.session.access_token)
result.otp = { aal: otpToken.aal, amr: otpToken.amr.map((m) => m.method) }
const step = await supabase.auth.mfa.getAuthenticatorAssuranceLevel()
result.otpLevel = { current: step.data.currentLevel, next: step.data.nextLevel }

const out = await supabase.auth.signOut()
if (out.error) fail('signOut', out.error)
const after = await fetch(`${url}/api/v1/me`, {
  headers: { Authorization: `Bearer ${byCode.data.session.access_token}` },
})
result.afterSignOut = { status: after.status, session: (await supabase.auth.getSession()).data.session }
result.events = events

// The PKCE flow (as @supabase/ssr uses): the link yields a code only this client redeems.
const pkce = createClient(url, anonKey, {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false,
    flowType: 'pkce' },
  realtime: { transport: ws },
})
const pkceEvents = []
pkce.auth.onAuthStateChange((event) => { pkceEvents.push(event) })
const pkceEmail = `pkce.${email}`
const pkceUp = await pkce.auth.signUp({ email: pkceEmail, password,
  options: { emailRedirectTo: `${url}/app/welcome` } })
if (pkceUp.error) fail('pkce signUp', pkceUp.error)
const landed = new URL(await ask({ open: 'auth/verify_email', email: pkceEmail }))
const exchanged = await pkce.auth.exchangeCodeForSession(landed.searchParams.get('code'))
if (exchanged.error) fail('exchangeCodeForSession', exchanged.error)
result.pkce = { session: pkceUp.data.session, landed: `${landed.origin}${landed.pathname}`,
  email: exchanged.data.user.email,
  amr: claims(exchanged.data.session.access_token).amr.map((m) => m.method),
  events: pkceEvents }
process.stdout.write(JSON.stringify({ result }) + '\n')
process.exit(0)

// supabase-js (realtime-js inside), unchanged, against TutorApp's /realtime/v1.
// Driven by tests/realtime/test_supabase_js.py: argv = url, anon key, JSON of
// {tutor, student, stranger: access tokens, booking: id}. It asks the server side to
// cancel the booking, and for a short-lived token, on stdout ({"ask": ...}) and reads
// {"answer"} on stdin; the last line printed is {"result": ...}.
import { createClient } from '@supabase/supabase-js'
import { createInterface } from 'node:readline'
import ws from 'ws'

const [url, anonKey, raw] = process.argv.slice(2)
const input = JSON.parse(raw)
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
const ask = async (question) => {
  process.stdout.write(JSON.stringify({ ask: question }) + '\n')
  return JSON.parse((await lines.next()).value).answer
}
const until = (what, predicate, ms = 15000) => new Promise((resolve, reject) => {
  const started = Date.now()
  const poll = () => {
    const value = predicate()
    if (value) return resolve(value)
    if (Date.now() - started > ms) return reject(new Error(`timed out waiting for ${what}`))
    setTimeout(poll, 20)
  }
  poll()
})
const client = (token) => {
  const supabase = createClient(url, anonKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: ws },
  })
  if (token) supabase.realtime.setAuth(token)
  return supabase
}
const subscribed = (channel) => new Promise((resolve) => {
  channel.subscribe((status, err) => {
    if (status !== 'SUBSCRIBED' && status !== 'CLOSED') resolve({ status, error: err?.message })
    if (status === 'SUBSCRIBED') resolve({ status })
  })
})

const topic = `booking:${input.booking}`
const result = {}
const tutor = client(input.tutor)
const student = client(input.student)
const stranger = client(input.stranger)

const heard = []
const changes = []
const tutorChannel = tutor.channel(topic, { config: { broadcast: { ack: true }, presence: { key: 'tutor' } } })
  .on('broadcast', { event: 'hello' }, (message) => heard.push(message))
  .on('presence', { event: 'sync' }, () => {})
  .on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'bookings' },
    (change) => changes.push(change))
result.tutorJoin = await subscribed(tutorChannel)

const studentChannel = student.channel(topic, { config: { broadcast: { ack: true, self: true }, presence: { key: 'student' } } })
  .on('broadcast', { event: 'hello' }, (message) => heard.push({ self: true, ...message }))
result.studentJoin = await subscribed(studentChannel)
result.track = await studentChannel.track({ typing: true })
await until('presence at the tutor', () => tutorChannel.presenceState().student)
result.presence = tutorChannel.presenceState().student.map(({ typing }) => ({ typing }))

result.send = await studentChannel.send({ type: 'broadcast', event: 'hello', payload: { text: 'hi' } })
await until('the broadcast at the tutor', () => heard.some((m) => !m.self))
await until('the broadcast back to self', () => heard.some((m) => m.self))
result.heard = heard.filter((m) => !m.self).map(({ event, payload, type }) => ({ event, payload, type }))

// REST: httpSend and the fallback of send() on an unjoined channel
const rest = await studentChannel.httpSend('hello', { text: 'over http' })
result.httpSend = rest
await until('the REST broadcast', () => heard.some((m) => m.payload?.text === 'over http'))

await ask({ cancel: input.booking })
await until('the booking event', () => changes.length)
result.change = { eventType: changes[0].eventType, table: changes[0].table,
  status: changes[0].new.status, id: changes[0].new.id, old: changes[0].old.status }

result.stranger = await subscribed(stranger.channel(topic))

await studentChannel.untrack()
await until('the leave at the tutor', () => !tutorChannel.presenceState().student)
result.left = true

// a token that expires while joined: Realtime's system message, then the channel closes
const expiring = client(await ask({ expiring: 2 }))  // minted now, lives 2 s
const systems = []
const statuses = []
expiring.channel(topic).on('system', {}, (message) => systems.push(message))
  .subscribe((status) => statuses.push(status))
await until('the expired channel to close', () => statuses.includes('CLOSED'))
result.expiry = { statuses, system: systems.map(({ extension, status, message }) =>
  ({ extension, status, message })) }

for (const c of [tutor, student, stranger, expiring]) await c.removeAllChannels()
process.stdout.write(JSON.stringify({ result }) + '\n')
process.exit(0)

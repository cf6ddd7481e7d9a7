// supabase-js's storage client (storage-js), unchanged, against TutorApp's /storage/v1.
// Driven by tests/files/test_storage_js.py with a signed-in user's access token; the
// last line printed is {"result": ...}.
import { createClient } from '@supabase/supabase-js'
import ws from 'ws'

const [url, anonKey, accessToken, uid] = process.argv.slice(2)
const supabase = createClient(url, anonKey, {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  global: { headers: { Authorization: `Bearer ${accessToken}` } },
  realtime: { transport: ws },  // Node 20 has no global WebSocket
})
const fail = (step, error) => {
  throw new Error(`${step}: ${error?.statusCode} ${error?.message}`)
}
const pdf = Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n', 'latin1')
const materials = supabase.storage.from('materials')
const result = {}

const blob = new Blob([pdf], { type: 'application/pdf' })
const uploaded = await materials.upload(`${uid}/js/notes.pdf`, blob)
if (uploaded.error) fail('upload', uploaded.error)
result.uploaded = uploaded.data.fullPath

const again = await materials.upload(`${uid}/js/notes.pdf`, blob)
result.duplicate = again.error?.statusCode

const downloaded = await materials.download(`${uid}/js/notes.pdf`)
if (downloaded.error) fail('download', downloaded.error)
result.downloadedSame = Buffer.from(await downloaded.data.arrayBuffer()).equals(pdf)

const signed = await materials.createSignedUrl(`${uid}/js/notes.pdf`, 60)
if (signed.error) fail('sign', signed.error)
const fetched = await fetch(signed.data.signedUrl)
result.signedStatus = fetched.status
result.signedSame = Buffer.from(await fetched.arrayBuffer()).equals(pdf)

const listed = await materials.list(`${uid}/js`)
if (listed.error) fail('list', listed.error)
result.listed = listed.data.map((entry) => entry.name)

const moved = await materials.move(`${uid}/js/notes.pdf`, `${uid}/js/week1.pdf`)
if (moved.error) fail('move', moved.error)
const copied = await materials.copy(`${uid}/js/week1.pdf`, `${uid}/js/week1-copy.pdf`)
if (copied.error) fail('copy', copied.error)

const spoofed = await materials.upload(`${uid}/js/evil.pdf`,
  new Blob(['<script>alert(1)</script>'], { type: 'application/pdf' }))
result.spoofed = spoofed.error?.statusCode

const removed = await materials.remove([`${uid}/js/week1.pdf`, `${uid}/js/week1-copy.pdf`])
if (removed.error) fail('remove', removed.error)
result.removed = removed.data.map((entry) => entry.name).sort()
const empty = await materials.list(`${uid}/js`)
result.afterRemove = empty.data.length

process.stdout.write(JSON.stringify({ result }) + '\n')

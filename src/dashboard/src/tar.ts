// A folder picked in the browser, packed as an uncompressed POSIX tar (ustar), which the
// daemon accepts as a bundle like the CLI's tar.gz. Paths lose the picked folder's own name
// (the CLI packs a folder's contents too); .git, __pycache__ and node_modules stay behind.

const SKIP = new Set(['.git', '__pycache__', 'node_modules']);

function field(h: Uint8Array<ArrayBuffer>, at: number, len: number, text: string) {
  const b = new TextEncoder().encode(text);
  if (b.length > len) throw new Error(`tar: "${text}" is too long`);
  h.set(b, at);
}

function octal(h: Uint8Array<ArrayBuffer>, at: number, len: number, n: number) {
  field(h, at, len, n.toString(8).padStart(len - 1, '0') + '\0');
}

// ustar splits a long path into a prefix (155 bytes) and a name (100 bytes) at a '/'.
function splitPath(path: string): [string, string] {
  if (new TextEncoder().encode(path).length <= 100) return ['', path];
  for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (prefix.length <= 155 && name.length <= 100) return [prefix, name];
  }
  throw new Error(`the path ${path} is too long for a bundle (over 255 bytes)`);
}

function header(path: string, size: number, mtime: number): Uint8Array<ArrayBuffer> {
  const h = new Uint8Array(512);
  const [prefix, name] = splitPath(path);
  field(h, 0, 100, name);
  octal(h, 100, 8, 0o644);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, Math.floor(mtime / 1000));
  h[156] = 0x30; // '0': a regular file
  field(h, 257, 6, 'ustar\0');
  field(h, 263, 2, '00');
  field(h, 345, 155, prefix);
  h.fill(0x20, 148, 156); // the checksum is computed with its own field as spaces
  let sum = 0;
  for (const b of h) sum += b;
  field(h, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

// The files' relative paths without the picked folder's name, minus what is never shipped.
export function bundlePaths(files: File[]): { file: File; path: string }[] {
  const out: { file: File; path: string }[] = [];
  for (const file of files) {
    const rel = (file as File & { webkitRelativePath?: string }).webkitRelativePath || file.name;
    const parts = rel.split('/');
    if (parts.length > 1) parts.shift();
    if (parts.some((p) => SKIP.has(p))) continue;
    out.push({ file, path: parts.join('/') });
  }
  return out;
}

export async function tarFolder(files: File[]): Promise<Blob> {
  const chunks: BlobPart[] = [];
  for (const { file, path } of bundlePaths(files)) {
    chunks.push(header(path, file.size, file.lastModified));
    chunks.push(file);
    const pad = (512 - (file.size % 512)) % 512;
    if (pad) chunks.push(new Uint8Array(pad));
  }
  chunks.push(new Uint8Array(1024)); // two empty blocks end the archive
  return new Blob(chunks, { type: 'application/x-tar' });
}

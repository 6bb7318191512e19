// The inspect action of the tsrun engine: stage 2 reads the image's metadata inside the container
// (whatever the image's format, symlinks resolve inside its root) and prints it instead of
// running a payload: labels, runscript, startscript, environment scripts, and what the wrapper
// read of a SIF file's descriptor table.
import * as fs from 'node:fs';

const META = '/.singularity.d';

export interface InspectResult {
  image: string;
  labels: Record<string, unknown> | null;
  runscript: string | null;
  startscript: string | null;
  environment: Record<string, string>;
  sif?: unknown;
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function readLabels(): Record<string, unknown> | null {
  const text = readText(`${META}/labels.json`);
  if (text === null) return null;
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { error: 'labels.json is not valid JSON' };
  }
}

function readEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  let names: string[] = [];
  try {
    names = fs
      .readdirSync(`${META}/env`)
      .filter((n) => n.endsWith('.sh'))
      .sort();
  } catch {
    return env;
  }
  for (const name of names) env[name] = readText(`${META}/env/${name}`) ?? '';
  return env;
}

export function inspectImage(image: string, sif: unknown): InspectResult {
  return {
    image,
    labels: readLabels(),
    runscript: readText(`${META}/runscript`) ?? readText('/singularity'),
    startscript: readText(`${META}/startscript`),
    environment: readEnvironment(),
    ...(sif === undefined ? {} : { sif }),
  };
}

function section(title: string, body: string | null): string {
  return body === null ? '' : `== ${title}\n${body.endsWith('\n') ? body : `${body}\n`}`;
}

/** The readable form: one section per item the image has. */
export function formatInspect(r: InspectResult): string {
  const labels =
    r.labels === null
      ? null
      : Object.entries(r.labels)
          .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join('\n');
  const env = Object.entries(r.environment).map(([name, text]) =>
    section(`environment ${name}`, text),
  );
  const parts = [
    section('labels', labels),
    section('runscript', r.runscript),
    section('startscript', r.startscript),
    ...env,
  ];
  if (r.sif !== undefined) parts.push(section('SIF descriptors', formatDescriptors(r.sif)));
  const text = parts.join('');
  return text === '' ? `${r.image}: no ${META} metadata in the image\n` : text;
}

interface DescriptorRow {
  id: number;
  dataType: number;
  offset: number;
  size: number;
  name: string;
  fsType?: number;
  partType?: number;
}

function formatDescriptors(sif: unknown): string {
  const rows = (sif as { descriptors: DescriptorRow[] }).descriptors;
  const head = 'ID  TYPE    OFFSET      SIZE        FS/PART  NAME';
  const lines = rows.map((d) =>
    [
      String(d.id).padEnd(4),
      `0x${d.dataType.toString(16)}`.padEnd(8),
      String(d.offset).padEnd(12),
      String(d.size).padEnd(12),
      (d.fsType === undefined ? '-' : `${d.fsType}/${d.partType}`).padEnd(9),
      d.name,
    ].join(''),
  );
  return [head, ...lines].join('\n');
}

// The README is the front door and docs/ holds the rest: every relative link in them resolves to a file, and every
// #anchor to a heading of that file (GitHub's slugs). The README's first policy is a policy Tessera accepts.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import t from 'tap';
import { compilePolicy } from '../../../core/policy/compile.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const PAGES = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_\- ]/gu, '')
    .replaceAll(' ', '-');
}

function withoutCode(markdown: string): string {
  return markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
}

function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  for (const m of withoutCode(markdown).matchAll(/^#+ (.*)$/gm)) anchors.add(slug(m[1]!));
  return anchors;
}

const pages = new Map(PAGES.map((p) => [p, readFileSync(join(ROOT, p), 'utf8')]));

t.test('every relative link and anchor in the README and docs/ resolves', async (t) => {
  let checked = 0;
  for (const [page, text] of pages) {
    for (const m of withoutCode(text).matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z+.-]*:/i.test(target)) continue;
      const [path, anchor] = target.split('#', 2) as [string, string | undefined];
      const file = path === '' ? join(ROOT, page) : normalize(join(ROOT, dirname(page), path));
      checked++;
      if (!existsSync(file)) {
        t.fail(`${page}: ${target} names ${relative(ROOT, file)}, which does not exist`);
        continue;
      }
      if (anchor === undefined || !file.endsWith('.md')) continue;
      const anchors = anchorsOf(readFileSync(file, 'utf8'));
      t.ok(anchors.has(anchor), `${page}: ${target} names a heading of ${relative(ROOT, file)}`);
    }
  }
  t.ok(checked > 30, `${checked} links checked`);
});

t.test('the README is a front door of about 300 lines', async (t) => {
  const lines = pages.get('README.md')!.split('\n').length;
  t.ok(lines <= 320, `README.md has ${lines} lines`);
  t.match(pages.get('README.md')!, /npm ci && npm test/, 'it shows the test command');
});

t.test("the README's first policy is accepted as it is", async (t) => {
  const readme = pages.get('README.md')!;
  const section = readme.slice(readme.indexOf('## A first policy'));
  const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  t.ok(yaml, 'the section holds a policy');
  const compiled = compilePolicy([{ name: 'first.yaml', text: yaml! }]);
  t.same(compiled.ok ? [] : compiled.problems, [], 'no problems');
  t.ok(compiled.ok, 'compiled');
});

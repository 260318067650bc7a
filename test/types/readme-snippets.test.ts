/**
 * Every ```ts block of README.md must compile under `strict`, against the package as users get it: each block
 * is written as its own ES module (`.mts`) into .tmp/readme-snippets/ inside the repo, where
 * `import … from 'express-polar-logout'` resolves through package.json `exports` to the built dist/ types
 * (jest's globalSetup builds dist/) and other imports to the repo's node_modules.
 *
 * For README authors: make a block self-contained (its own imports) where you can. A block may use, without
 * declaring them, only the free identifiers of PRELUDE below (an app, the client credentials, an audit sink...);
 * add one there only when declaring it in the README would hide what the block is about. A block with no
 * import or export gets `export {}` so blocks never see each other's declarations. ```js and ```sh blocks are
 * not checked. A failure names the README line of the error.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const ROOT = path.resolve(__dirname, '../..');
const WORK_DIR = path.join(ROOT, '.tmp', 'readme-snippets');

/** Free identifiers a README block may use without declaring them. */
const PRELUDE = `
declare const app: import('express').Express;
declare const auditLog: { write(entry: object): void };
declare const clientId: string;
declare const clientSecret: string;
declare const accessToken: string;
declare const refreshToken: string;
declare const signal: AbortSignal;
`;

const COMPILER_OPTIONS: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
  module: ts.ModuleKind.Node16,
  moduleResolution: ts.ModuleResolutionKind.Node16,
  esModuleInterop: true,
  // Errors inside dependencies' declarations are not the README's; errors in using them are still reported.
  skipLibCheck: true,
  types: ['node', 'jest'],
  typeRoots: [path.join(ROOT, 'node_modules', '@types')],
};

interface Snippet {
  /** 1-based README line of the first code line. */
  line: number;
  code: string;
}

/** The ```ts blocks of a Markdown text, dedented (blocks inside list items are indented). */
function tsBlocks(markdown: string): Snippet[] {
  const lines = markdown.split('\n');
  const blocks: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```ts\s*$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !/^\s*```\s*$/.test(lines[j]!)) body.push(lines[j++]!.slice(indent));
    if (j === lines.length) throw new Error(`README.md:${i + 1}: unclosed code block`);
    blocks.push({ line: i + 2, code: body.join('\n') });
    i = j;
  }
  return blocks;
}

/** Type-checks the snippets together (one program, one module each); returns messages with README lines. */
function compile(snippets: Snippet[], label: string): string[] {
  rmSync(WORK_DIR, { recursive: true, force: true });
  mkdirSync(WORK_DIR, { recursive: true });
  const prelude = path.join(WORK_DIR, 'prelude.d.ts');
  writeFileSync(prelude, PRELUDE);
  const files = new Map<string, Snippet>();
  for (const [index, snippet] of snippets.entries()) {
    const file = path.join(WORK_DIR, `snippet-${index + 1}.mts`);
    const isModule = /^\s*(import|export)\s/m.test(snippet.code);
    writeFileSync(file, isModule ? `${snippet.code}\n` : `${snippet.code}\nexport {};\n`);
    files.set(file, snippet);
  }
  const program = ts.createProgram([prelude, ...files.keys()], COMPILER_OPTIONS);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!d.file || d.start === undefined) return `${label}: ${message}`;
    const snippet = files.get(path.resolve(d.file.fileName));
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const where = snippet ? `${label}:${snippet.line + line}` : path.relative(ROOT, d.file.fileName);
    return `${where}: TS${d.code}: ${message}`;
  });
}

afterAll(() => rmSync(WORK_DIR, { recursive: true, force: true }));

it('type-checks every TypeScript block of the README under strict', () => {
  const snippets = tsBlocks(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
  // The Quick start, the audit event, errors, the standalone client, testing, the outbox, the CSP example at least.
  expect(snippets.length).toBeGreaterThanOrEqual(7);
  expect(compile(snippets, 'README.md')).toEqual([]);
}, 60_000);

it('can fail: a wrong snippet is reported with its README line', () => {
  const markdown = [
    '# t',
    '```ts',
    "import { polarLogout } from 'express-polar-logout';",
    "polarLogout({ clientId: 'id' });",
    '```',
    '  ```ts',
    "  const n: number = 'one';",
    '  ```',
  ].join('\n');
  const messages = compile(tsBlocks(markdown), 'sample.md');
  expect(messages).toEqual([
    expect.stringMatching(/^sample\.md:4: TS2345: .*clientSecret/s),
    expect.stringMatching(/^sample\.md:7: TS2322: Type 'string' is not assignable to type 'number'/),
  ]);
}, 60_000);

import { defineConfig } from 'vitest/config';

// The workspace runs every package from its TypeScript sources: `source` is the export condition
// that points at src/ (a consumer, without it, gets dist/). NODE_OPTIONS carries the same
// condition into the Node processes that tests spawn.
const SOURCE_CONDITION = 'source';
const nodeOptions = [process.env.NODE_OPTIONS, `--conditions=${SOURCE_CONDITION}`].filter(Boolean).join(' ');

export default defineConfig({
  resolve: { conditions: [SOURCE_CONDITION] },
  ssr: { resolve: { conditions: [SOURCE_CONDITION] } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
    // Type tests (*.test-d.ts) run under tsc and count as tests: a type that stops holding fails.
    typecheck: { enabled: true, include: ['packages/*/test/**/*.test-d.ts'], tsconfig: './tsconfig.json' },
    env: { NODE_OPTIONS: nodeOptions },
    // Suites open real TLS sockets; two cores run them best a couple of files at a time.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 10_000,
  },
});

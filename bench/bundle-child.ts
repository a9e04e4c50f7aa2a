// A bench child harness as one plain-node ESM file, written into a consumer project
// (scripts/consumer-project.ts) so that its bare imports (the Azure packages, ours) resolve from
// that project's node_modules, the way a user's program resolves them. Used by `pnpm bench` and
// `pnpm bench:soak`.
export async function bundleChild(entry: string, outfile: string, external: string[]): Promise<string> {
  const { build } = await import('esbuild');
  await build({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', target: 'node20', external, keepNames: false, outfile, logLevel: 'error' });
  return outfile;
}

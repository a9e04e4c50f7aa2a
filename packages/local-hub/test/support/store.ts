// Shared by the store suites: what opening a state dir throws, if anything.
import { openHubStore } from '../../src/store/index.ts';

export function openError(stateDir: string): unknown {
  try {
    openHubStore({ stateDir }).close();
  } catch (e) {
    return e;
  }
  return undefined;
}

// Capability typing, run by vitest's typecheck mode (vitest.config.ts `typecheck`): every
// expectTypeOf and every @ts-expect-error below is a test that fails when the types stop saying it.
import { describe, expectTypeOf, it } from 'vitest';
import type { CapabilityProfile, ProfileDefinition } from '@switchyard/profile';
import type { C2DMessage, ClientFor, ConnectionState, DeviceClient, FeaturesOf, StateChange, connect } from '../src/index.ts';

type Connected<P extends ProfileDefinition | string | undefined> = Awaited<ReturnType<typeof connect<P>>>['client'];

describe('client type follows the literal profile', () => {
  it('offers twin and methods only when declared', () => {
    type Telemetry = Connected<{ features: ['telemetry'] }>;
    type Full = Connected<{ features: ['telemetry', 'twin', 'methods', 'file-upload', 'c2d-reject-abandon'] }>;
    expectTypeOf<Full>().toHaveProperty('getTwin');
    expectTypeOf<Full>().toHaveProperty('onMethod');
    expectTypeOf<Full>().toHaveProperty('uploadToBlob');
    expectTypeOf<Telemetry>().not.toHaveProperty('getTwin');
    expectTypeOf<Telemetry>().not.toHaveProperty('onMethod');
    expectTypeOf<Telemetry>().not.toHaveProperty('uploadToBlob');
    const check = (t: Telemetry, f: Full): void => {
      // @ts-expect-error twin is not in the profile's features
      void t.getTwin;
      // @ts-expect-error methods are not in the profile's features
      void t.onMethod;
      void f.getTwin;
    };
    void check;
  });

  it('offers abandon/reject on messages only with c2d-reject-abandon', () => {
    type Plain = Connected<{ features: ['c2d'] }>;
    type Settling = Connected<{ features: ['c2d', 'c2d-reject-abandon'] }>;
    const check = (p: Plain, s: Settling): void => {
      p.on('message', (m) => {
        void m.complete;
        // @ts-expect-error abandon needs c2d-reject-abandon
        void m.abandon;
      });
      s.on('message', (m) => {
        void m.abandon;
        void m.reject;
      });
    };
    void check;
    expectTypeOf<C2DMessage<false>>().not.toHaveProperty('reject');
  });

  it('a profile file path or a widened profile gives the general client', () => {
    expectTypeOf<FeaturesOf<string>>().toEqualTypeOf<FeaturesOf<undefined>>();
    expectTypeOf<Connected<string>>().toEqualTypeOf<DeviceClient>();
    expectTypeOf<Connected<ProfileDefinition>>().toEqualTypeOf<DeviceClient>();
    expectTypeOf<Connected<CapabilityProfile>>().toEqualTypeOf<DeviceClient>();
    expectTypeOf<DeviceClient>().toHaveProperty('getTwin');
    expectTypeOf<ClientFor<'telemetry'>>().toHaveProperty('sendEventBatch');
    // A profile object without features defaults to telemetry only, as the schema does.
    expectTypeOf<Connected<{ c2d: 'none' }>>().not.toHaveProperty('getTwin');
  });

  it('typed events carry typed payloads', () => {
    const check = (c: DeviceClient): void => {
      c.on('disconnected', (e) => {
        expectTypeOf(e.willRetry).toEqualTypeOf<boolean>();
      });
      c.on('poll', (e) => {
        expectTypeOf(e.nextPollAt).toEqualTypeOf<Date>();
      });
      c.on('state', (change) => {
        expectTypeOf(change).toEqualTypeOf<StateChange>();
        expectTypeOf(change.to).toEqualTypeOf<ConnectionState>();
      });
      expectTypeOf(c.state).toEqualTypeOf<ConnectionState>();
      // @ts-expect-error no such event
      c.on('connnected', () => undefined);
    };
    void check;
  });
});

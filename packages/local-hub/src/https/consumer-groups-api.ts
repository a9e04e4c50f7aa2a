// Local REST extension for the built-in endpoint's consumer groups, what IoT Hub offers through
// the portal and its resource provider (`eventHubEndpoints/events/ConsumerGroups/{name}`).
import { SwitchyardError } from '@switchyard/errors';
import { param, type ConsumerGroupAdmin, type RequestContext } from './context.ts';
import { badRequest, HttpError, sendEmpty, sendJson } from './respond.ts';

function adminOf(ctx: RequestContext): ConsumerGroupAdmin {
  if (!ctx.deps.consumerGroups) throw new HttpError(404, 'NotFound', 404000, 'this front-end has no Event Hubs-compatible endpoint');
  return ctx.deps.consumerGroups;
}

function refusedAsBadRequest<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof SwitchyardError) throw badRequest(error.message);
    throw error;
  }
}

export function listConsumerGroups(ctx: RequestContext): void {
  sendJson(ctx.res, 200, adminOf(ctx).list().map((name) => ({ name })));
}

export function putConsumerGroup(ctx: RequestContext): void {
  const admin = adminOf(ctx);
  const name = refusedAsBadRequest(() => admin.create(param(ctx.params, 'consumerGroup')));
  sendJson(ctx.res, 200, { name });
}

export function deleteConsumerGroup(ctx: RequestContext): void {
  const admin = adminOf(ctx);
  const deleted = refusedAsBadRequest(() => admin.delete(param(ctx.params, 'consumerGroup')));
  if (!deleted) throw new HttpError(404, 'NotFound', 404000, `consumer group '${param(ctx.params, 'consumerGroup')}' does not exist`);
  sendEmpty(ctx.res, 204);
}

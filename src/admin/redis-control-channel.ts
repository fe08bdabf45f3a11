/**
 * Cluster `ControlChannel`: one Redis pub/sub channel, `<prefix>admin:control`. The publishing
 * node applies the command itself at once and tags the payload `<nodeId>\n<json>` so it ignores
 * its own echo. Pub/sub is at-most-once: that is enough because the state that must hold (bans,
 * revocations) lives in Redis keys checked at every `auth`; the channel only closes open sessions.
 */
import type { Redis } from 'ioredis';
import { resubscribeOnReconnect } from '../redis/resubscribe.js';
import { parseControlCommand, type ControlChannel, type ControlCommand, type ControlHandler } from './control-channel.js';

export interface RedisControlChannelOptions {
  /** Shared command client (not closed here). */
  client: Redis;
  /** A dedicated connection in subscriber mode (closed by the owner), created with `autoResubscribe: false`. */
  subscriber: Redis;
  prefix: string;
  nodeId: string;
  onError(err: unknown, op: string): void;
  /** The channel is live again after a reconnect of `subscriber`: commands published meanwhile were missed. */
  onRestored?(): void;
}

export class RedisControlChannel implements ControlChannel {
  private handler: ControlHandler = () => {};
  private readonly channel: string;
  private readonly tag: string;
  private readonly stopResubscribing: () => void;

  private constructor(private readonly o: RedisControlChannelOptions) {
    this.channel = `${o.prefix}admin:control`;
    this.tag = `${o.nodeId}\n`;
    o.subscriber.on('message', this.onMessage);
    this.stopResubscribing = resubscribeOnReconnect(o.subscriber, {
      channels: () => [this.channel],
      onRestored: () => o.onRestored?.(),
      onError: (err) => o.onError(err, 'subscribe'),
    });
  }

  /** Subscribes before returning, so no command published after start-up is missed. */
  static async open(o: RedisControlChannelOptions): Promise<RedisControlChannel> {
    const channel = new RedisControlChannel(o);
    await o.subscriber.subscribe(channel.channel);
    return channel;
  }

  async publish(command: ControlCommand): Promise<void> {
    this.handler(command);
    await this.o.client.publish(this.channel, this.tag + JSON.stringify(command));
  }

  onCommand(handler: ControlHandler): void {
    this.handler = handler;
  }

  async close(): Promise<void> {
    this.o.subscriber.off('message', this.onMessage);
    this.stopResubscribing();
  }

  private readonly onMessage = (channel: string, payload: string): void => {
    if (channel !== this.channel || payload.startsWith(this.tag)) return;
    const nl = payload.indexOf('\n');
    const command = nl === -1 ? undefined : parseControlCommand(payload.slice(nl + 1));
    if (command === undefined) return this.o.onError(new Error('malformed control command'), 'control');
    try {
      this.handler(command);
    } catch (err) {
      this.o.onError(err, 'control');
    }
  };
}

/**
 * The simulator's agents (https://buildkite.com/docs/apis/rest-api/agents). Every job created
 * through the OIDC side runs on an agent, so `GET …/agents/{agent_id}` answers for the
 * `agent_id` in that job's tokens; further agents can be created directly.
 */
import type { SimAgent, SimAgentInit } from './build-types.js';
import { uuid } from './ids.js';
import type { SimJob } from './types.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class AgentRegistry {
  private readonly agents = new Map<string, Mutable<SimAgent>>();
  private counter = 0;

  create(init: SimAgentInit = {}): SimAgent {
    const id = init.id ?? uuid();
    if (this.agents.has(id)) throw new Error(`agent ${id} already exists`);
    const n = ++this.counter;
    const agent: Mutable<SimAgent> = {
      id,
      name: init.name ?? `sim-agent-${n}`,
      hostname: init.hostname ?? `sim-host-${n}`,
      ipAddress: init.ipAddress ?? '127.0.0.1',
      version: init.version ?? '3.80.0',
      osId: init.osId ?? 'linux',
      arch: init.arch ?? 'amd64',
      connectionState: init.connectionState ?? 'connected',
      metaData: Object.entries(init.tags ?? { queue: 'default' }).map(([k, v]) => `${k}=${v}`),
      creator: init.creator ?? null,
      createdAt: new Date(),
      currentJobId: null,
    };
    this.agents.set(id, agent);
    return agent;
  }

  get(id: string): SimAgent | undefined {
    return this.agents.get(id);
  }

  /** Registers (or updates) the agent a job runs on, tagged as the job's agent is. */
  assign(job: SimJob): SimAgent {
    const agent = this.agents.get(job.agentId) ?? this.create({ id: job.agentId, tags: job.agentTags });
    (agent as Mutable<SimAgent>).currentJobId = job.jobId;
    return agent;
  }
}

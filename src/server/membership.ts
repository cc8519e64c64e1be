import { assert } from "../assert.js";
import type { Backend } from "../backend/backend.js";

/**
 * The cluster's members as the apply loop maintains them (etcd's membership.RaftCluster): added by
 * conf-change entries, given their name and client URLs by the member's own "publish" request, kept in
 * the backend's `members` table (key: the id in hex, value: etcd's member JSON) so a restart and a
 * snapshot carry them.
 */

export interface Member {
  readonly id: bigint;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/** The JSON a conf-change entry carries as its context, and the members table stores (etcd's shape). */
interface MemberJson {
  id: string;
  name?: string;
  peerURLs?: string[];
  clientURLs?: string[];
  isLearner?: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeMemberContext(member: Member): Uint8Array {
  const json: MemberJson = {
    id: member.id.toString(),
    name: member.name,
    peerURLs: member.peerUrls,
    clientURLs: member.clientUrls,
    isLearner: member.isLearner,
  };
  return encoder.encode(JSON.stringify(json));
}

export function decodeMemberContext(bytes: Uint8Array): Member {
  const json = JSON.parse(decoder.decode(bytes)) as MemberJson;
  assert(typeof json.id === "string" && /^\d+$/.test(json.id), "member JSON carries a decimal id");
  return {
    id: BigInt(json.id),
    name: json.name ?? "",
    peerUrls: [...(json.peerURLs ?? [])],
    clientUrls: [...(json.clientURLs ?? [])],
    isLearner: json.isLearner === true,
  };
}

function memberKey(id: bigint): Uint8Array {
  return encoder.encode(id.toString(16));
}

export class Membership {
  private readonly members = new Map<bigint, Member>();
  /** Ids removed from the cluster (etcd's members_removed bucket): never to be let back in. */
  private readonly removed = new Set<bigint>();

  constructor(private readonly backend: Backend) {
    this.reload();
  }

  /** Reads the member list again from the backend (after a snapshot replaced its contents). */
  reload(): void {
    this.members.clear();
    this.removed.clear();
    this.backend.range("members", new Uint8Array(0), null, (_key, value) => {
      const member = decodeMemberContext(value);
      this.members.set(member.id, member);
      return true;
    });
    this.backend.range("members_removed", new Uint8Array(0), null, (key) => {
      this.removed.add(BigInt(`0x${decoder.decode(key)}`));
      return true;
    });
  }

  list(): Member[] {
    return [...this.members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(id: bigint): Member | undefined {
    return this.members.get(id);
  }

  isRemoved(id: bigint): boolean {
    return this.removed.has(id);
  }

  /** Voting members (not learners). */
  voters(): Member[] {
    return this.list().filter((m) => !m.isLearner);
  }

  /** Adds (or replaces) a member; the caller seals the backend unit. */
  add(member: Member): void {
    this.members.set(member.id, member);
    this.persist(member);
  }

  remove(id: bigint): void {
    this.members.delete(id);
    this.backend.delete("members", memberKey(id));
    this.removed.add(id);
    this.backend.put("members_removed", memberKey(id), encoder.encode("removed"));
  }

  /** Replaces a member's peer URLs (etcd 3.4 also clears its learner flag here: a known quirk kept). */
  updatePeerUrls(id: bigint, peerUrls: readonly string[]): boolean {
    const member = this.members.get(id);
    if (member === undefined) return false;
    member.peerUrls = [...peerUrls];
    member.isLearner = false;
    this.persist(member);
    return true;
  }

  promote(id: bigint): boolean {
    const member = this.members.get(id);
    if (member === undefined) return false;
    member.isLearner = false;
    this.persist(member);
    return true;
  }

  /** Sets the attributes a member publishes about itself once it serves clients. */
  setAttributes(id: bigint, name: string, clientUrls: readonly string[]): boolean {
    const member = this.members.get(id);
    if (member === undefined) return false;
    member.name = name;
    member.clientUrls = [...clientUrls];
    this.persist(member);
    return true;
  }

  private persist(member: Member): void {
    this.backend.put("members", memberKey(member.id), encodeMemberContext(member));
  }
}

@0x8c26664baa0380a8;
# The transfer plane: moving one artifact across one hop, receiver-driven.
#
# The receiver (the downstream agent) connects a DEALER to the sender's artifact server (a
# ROUTER) and asks for the manifest first, then for chunks by index, never asking for more bytes
# than its credit window; the sender never sends what was not asked for (ZeroMQ guide, ch. 7,
# "Transferring Files"). The sender keeps no state per transfer beyond requests it has parked, so
# either side can restart at any moment: the receiver resumes from its journal.
#
# Frames: every message is one TransferMessage frame. `chunk` and `signaturePart` are followed
# by exactly one more frame holding the payload bytes (not inside Cap'n Proto, so a chunk is
# read from disk straight into the frame and hashed and written straight from it).
#
# Compatibility: fields and union members are only ever added, with new ordinals; a change that
# cannot be made that way bumps transferMajor, and a peer of another major is answered with
# `unavailable` naming both versions.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("imgpipe::proto");

const transferMajor :UInt16 = 1;
const transferMinor :UInt16 = 0;

enum ArtifactKind {
  image @0;
  delta @1;      # a librsync delta from basisId to targetId
}

enum DeltaFormat {
  none @0;
  # librsync delta over the basis file's bytes, the delta stream compressed with xz. Works for
  # any file; on compressed qcow2 it sends about 70% of what rsync sends (deflated clusters hide
  # data that moved).
  rdiffXz @1;
  # qcow2-aware (transfer/delta.h): clusters the basis has are copied from it, new clusters
  # travel as an xz'd rdiff of their decompressed content against the basis's decompressed
  # clusters and are deflated again, with qemu's parameters, by the receiver. About a tenth of
  # what rsync sends on real rebuilt images. Only when the sender holds the basis.
  qcow2Clusters @2;
}

# Describes one artifact completely. Its digest (sha256 of exactly these encoded bytes, as the
# origin produced them) is what the coordinator hands to receivers as the trust anchor; every hop
# stores and forwards the encoded bytes unchanged.
struct Manifest {
  formatVersion @0 :UInt16;
  kind @1 :ArtifactKind;
  imageName @2 :Text;
  imageVersion @3 :Text;
  size @4 :UInt64;
  sha256 @5 :Data;
  sha512 @6 :Data;
  chunkSize @7 :UInt32;
  chunkHashes @8 :Data;         # sha256 of each chunk, 32 bytes each, concatenated
  basisId @9 :Text;             # delta: artifact id (sha256 hex) of the basis image
  targetId @10 :Text;           # delta: artifact id of the image it produces
  virtualSize @11 :UInt64;
  metadata @12 :Text;           # the build manifest (JSON) travelling with the image
  deltaFormat @13 :DeltaFormat;
  deltaBlockSize @14 :UInt32;   # delta: the librsync block length it was made with
  # The output kind the image is (definition/outputs.h): "qcow2" ("" in manifests before 0.5),
  # "iso". Versions of one image name and output are each other's delta bases and are kept
  # together (retention).
  output @15 :Text;
}

struct TransferMessage {
  major @0 :UInt16;
  minor @1 :UInt16;
  body :union {
    # receiver -> sender
    getManifest @2 :ArtifactRef;
    getChunks @3 :ChunkRequest;
    ping @4 :UInt64;              # answered by pong with the same nonce
    openDelta @5 :DeltaRequest;
    signaturePart @6 :SignaturePart;
    # sender -> receiver
    manifest @7 :ManifestReply;
    chunk @8 :ChunkHeader;
    unavailable @9 :Unavailable;
    pong @10 :UInt64;
    deltaReply @11 :DeltaReply;
  }
}

struct ArtifactRef {
  artifactId @0 :Text;
}

struct ManifestReply {
  artifactId @0 :Text;
  encoded @1 :Data;             # the encoded Manifest; sha256(encoded) = manifest digest
  chunksAvailable @2 :UInt32;   # how many chunks the sender holds verified right now
}

# Chunks by index. The sender answers each index with a chunk (or, for the whole request, an
# unavailable); one it does not hold yet (a relay still receiving) is parked and answered when
# the chunk arrives — cut-through.
struct ChunkRequest {
  artifactId @0 :Text;
  indices @1 :List(UInt32);
}

struct ChunkHeader {
  artifactId @0 :Text;
  index @1 :UInt32;
  size @2 :UInt32;
  heldUs @3 :UInt64;            # how long the request waited at the sender (parked); the
                                # receiver takes it out of its round-trip estimate
}

struct Unavailable {
  artifactId @0 :Text;
  reason @1 :Text;
  retryable @2 :Bool;           # false: the sender will never have it (wrong id, not granted,
                                # damaged at the origin); true: ask again later
}

# Asks the sender for a delta that turns basisId (which the receiver holds, verified) into
# targetId.
struct DeltaRequest {
  targetId @0 :Text;
  basisId @1 :Text;
  formats @2 :List(DeltaFormat);  # what the receiver can apply
}

struct DeltaReply {
  targetId @0 :Text;
  basisId @1 :Text;
  union {
    ready @2 :ManifestReply;    # the delta artifact (whole, or still arriving at a relay)
    needSignature @3 :UInt32;   # the sender lacks the basis: upload its signature made with
                                # this block length
    pending @4 :Void;           # being computed; ask again shortly
    unavailable @5 :Text;       # no delta (too large, not possible); fetch the whole artifact
  }
}

# The basis signature, uploaded in parts, each followed by one payload frame.
struct SignaturePart {
  targetId @0 :Text;
  basisId @1 :Text;
  offset @2 :UInt64;
  totalSize @3 :UInt64;
  blockSize @4 :UInt32;
}

@0x8c26664baa0380a8;
# The transfer plane: moving one artifact across one hop, receiver-driven.
#
# The receiver (the downstream agent) connects to the sender's artifact server and asks for the
# manifest first, then for chunks, never asking for more bytes than its credit window; the
# sender never sends what was not asked for (ZeroMQ guide, ch. 7, "Transferring Files"). Chunk
# payloads travel as a second ZeroMQ frame after a ChunkHeader, not inside Cap'n Proto.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("imgpipe::proto");

const transferMajor :UInt16 = 1;
const transferMinor :UInt16 = 0;

enum ArtifactKind {
  image @0;
  delta @1;      # a librsync delta from basisId to targetId
}

# Describes one artifact completely. Its digest (sha256 of its canonical encoding) is what the
# coordinator hands to receivers as the trust anchor.
struct Manifest {
  formatVersion @0 :UInt16;
  kind @1 :ArtifactKind;
  imageName @2 :Text;
  imageVersion @3 :Text;
  size @4 :UInt64;
  sha256 @5 :Data;
  sha512 @6 :Data;
  chunkSize @7 :UInt32;
  chunkHashes @8 :List(Data);   # sha256 of each chunk
  basisId @9 :Text;             # delta: sha256 hex of the basis image
  targetId @10 :Text;           # delta: sha256 hex of the image it produces
  virtualSize @11 :UInt64;
  metadata @12 :Text;           # the build manifest (JSON) travelling with the image
}

struct TransferMessage {
  major @0 :UInt16;
  minor @1 :UInt16;
  body :union {
    getManifest @2 :ArtifactRef;
    manifest @3 :ManifestReply;
    getChunks @4 :ChunkRequest;
    chunk @5 :ChunkHeader;
    unavailable @6 :Unavailable;
    ping @7 :UInt64;
    pong @8 :UInt64;
    openDelta @9 :DeltaRequest;
    deltaReply @10 :DeltaReply;
    signaturePart @11 :SignaturePart;
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

struct ChunkRequest {
  artifactId @0 :Text;
  indices @1 :List(UInt32);
}

struct ChunkHeader {
  artifactId @0 :Text;
  index @1 :UInt32;
  size @2 :UInt32;
}

struct Unavailable {
  artifactId @0 :Text;
  reason @1 :Text;
  retryable @2 :Bool;
}

struct DeltaRequest {
  targetId @0 :Text;
  basisId @1 :Text;
}

struct DeltaReply {
  targetId @0 :Text;
  basisId @1 :Text;
  union {
    ready @2 :ManifestReply;    # a delta artifact is ready (or being received) at the sender
    needSignature @3 :Void;     # upload the basis signature first
    unavailable @4 :Text;       # no delta possible; fetch the whole artifact
  }
}

struct SignaturePart {
  targetId @0 :Text;
  basisId @1 :Text;
  offset @2 :UInt64;
  last @3 :Bool;                # the payload follows as a second frame
}

"""A protoc plugin (stdin: CodeGeneratorRequest, stdout: CodeGeneratorResponse) that produces
gRPC Python stubs (`*_pb2_grpc.py`).

Why this exists: grpcio-tools compiles its gRPC Python generator into its bundled protoc rather
than shipping a `protoc-gen-grpc_python` executable, and buf only drives protoc's own built-in
generators (python, pyi) through `protoc_builtin`. This adapter replays buf's request through
`grpc_tools.protoc --grpc_python_out`, so the stubs come from the very generator pinned with the
grpcio runtime. No network, no extra binaries.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse()
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = pathlib.Path(tmp, "in.binpb")
        descriptors.write_bytes(
            descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString()
        )
        out = pathlib.Path(tmp, "out")
        out.mkdir()
        flag = f"--grpc_python_out={request.parameter + ':' if request.parameter else ''}{out}"
        rc = protoc.main(
            ["protoc", f"--descriptor_set_in={descriptors}", flag, *request.file_to_generate]
        )
        if rc != 0:
            response.error = f"grpc_tools.protoc exited with {rc}"
        else:
            for path in sorted(out.rglob("*.py")):
                generated = response.file.add()
                generated.name = path.relative_to(out).as_posix()
                generated.content = path.read_text()
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""S3-compatible object storage: ``s3://BUCKET/PREFIX``.

Objects under the prefix:

* ``PREFIX/blobs/<sha256>`` - one immutable object per blob, named by its SHA-256;
* ``PREFIX/staging/<uuid>`` - an upload in progress, whose digest is not known yet.

Storing a file takes ONE read pass: its bytes are streamed to a staging object (a
multipart upload of ``part_size`` parts once the file is larger than one part, each part
sent while the next is read, so memory stays at about two parts per worker whatever the
file size) while they are hashed; then,
once the digest is known and the caller has held it (:data:`~mlprov.artifacts.BlobHold`),
the staging object is copied server-side to its blob key unless that key exists already
(boto3's managed copy, which switches to a multipart copy above ``copy_threshold``: one
CopyObject is limited to 5 GiB), and the staging object is deleted. A PUT or a completed
multipart upload makes an object visible whole or not at all, so a reader never sees part
of a blob; a killed upload leaves a staging object or an unfinished multipart upload,
removed by ``mlprov gc`` after its grace period (:meth:`ArtifactStore.remove_staging`).

Endpoint, region and credentials come from the usual AWS environment and files (boto3
reads ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
``AWS_PROFILE``, ``~/.aws/config`` and ``~/.aws/credentials`` itself);
``MLPROV_S3_ENDPOINT_URL`` overrides the endpoint for mlprov alone.
``MLPROV_S3_PART_SIZE`` and ``MLPROV_S3_COPY_THRESHOLD`` (bytes, or with a ``MiB``/``GiB``
suffix) change the multipart sizes. boto3 is imported on first use only.

Every botocore failure becomes one :class:`~mlprov.errors.StorageError` line naming the
cause a user can act on (no credentials, no such bucket, access denied, endpoint
unreachable); a missing object is a ``FileNotFoundError`` here, which the base class
reports as :class:`~mlprov.errors.NotFoundError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlprov.artifacts import (
    READ_CHUNK,
    ArtifactStore,
    BlobHold,
    BlobInfo,
    ChunkConsumer,
    ProgressCallback,
    StoredBlob,
)
from mlprov.errors import ConfigError, StorageError
from mlprov.hashing import CHUNK_SIZE, read_whole_file

if TYPE_CHECKING:
    from botocore.client import BaseClient

__all__ = ["DEFAULT_COPY_THRESHOLD", "DEFAULT_PART_SIZE", "S3ArtifactStore"]

MiB = 1024 * 1024
GiB = 1024 * MiB
#: S3 refuses parts smaller than 5 MiB (except the last) and larger than 5 GiB.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
#: 64 MiB parts: 10,000 parts (the S3 maximum) reach 625 GiB per blob.
DEFAULT_PART_SIZE = 64 * MiB
#: One CopyObject copies at most 5 GiB; above that the copy is multipart.
DEFAULT_COPY_THRESHOLD = 5 * GiB

_BUCKET = re.compile(r"\A[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_SHA256_HEX = re.compile(r"\A[0-9a-f]{64}\Z")
_SIZE = re.compile(r"\A\s*(\d+)\s*(B|KiB|MiB|GiB)?\s*\Z")
_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": MiB, "GiB": GiB}
_local = threading.local()


def _size_setting(name: str, default: int, low: int, high: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    match = _SIZE.match(text)
    if match is None:
        raise ConfigError(f"{name}={text[:40]!r} is not a size: use bytes or e.g. 64MiB")
    value = int(match.group(1)) * _UNITS[match.group(2)]
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low // MiB} MiB and {high // GiB} GiB")
    return value


class S3ArtifactStore(ArtifactStore):
    """Blobs as objects of one bucket, below one prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        copy_threshold: int = DEFAULT_COPY_THRESHOLD,
    ) -> None:
        if not _BUCKET.match(bucket):
            raise ConfigError(f"s3 bucket name {bucket[:80]!r} is not valid")
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ConfigError("the S3 part size must be between 5 MiB and 5 GiB")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.part_size = part_size
        self.copy_threshold = copy_threshold
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client: BaseClient | None = None
        self._client_lock = threading.Lock()

    @classmethod
    def from_uri(cls, uri: str) -> S3ArtifactStore:
        rest = uri.partition("://")[2]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ConfigError(f"artefact store URI {uri!r} names no bucket: use s3://BUCKET/PREFIX")
        if "?" in prefix or "#" in prefix or "\\" in prefix or ".." in prefix.split("/"):
            raise ConfigError(f"artefact store URI {uri!r}: the prefix must be a plain key path")
        return cls(
            bucket,
            prefix,
            endpoint_url=os.environ.get("MLPROV_S3_ENDPOINT_URL") or None,
            part_size=_size_setting(
                "MLPROV_S3_PART_SIZE", DEFAULT_PART_SIZE, MIN_PART_SIZE, MAX_PART_SIZE
            ),
            copy_threshold=_size_setting(
                "MLPROV_S3_COPY_THRESHOLD", DEFAULT_COPY_THRESHOLD, MIN_PART_SIZE, MAX_PART_SIZE
            ),
        )

    # -- the client and its errors -----------------------------------------------------

    @property
    def client(self) -> BaseClient:
        """The boto3 S3 client, made on first use (boto3 costs start-up time)."""
        with self._client_lock:
            if self._client is None:
                try:
                    import boto3  # noqa: PLC0415
                    from botocore.config import Config  # noqa: PLC0415
                except ImportError as e:  # pragma: no cover - a core dependency
                    raise ConfigError("s3:// artefact stores need boto3: pip install boto3") from e
                config = Config(
                    connect_timeout=10,
                    read_timeout=60,
                    retries={"mode": "standard", "max_attempts": 3},
                )
                # A session per store: boto3's default session is not thread-safe to create.
                session = boto3.session.Session()
                self._client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
            return self._client

    def _key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts)) if self.prefix else "/".join(parts)

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """botocore's exceptions as one mlprov line (STYLE.md, 4); a missing object as
        ``FileNotFoundError`` for the base class."""
        from botocore import exceptions as boto  # noqa: PLC0415

        try:
            yield
        except boto.ClientError as e:
            error = e.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "NotFound", "404"):
                raise FileNotFoundError(f"{action}: no such object") from e
            if code == "NoSuchBucket":
                raise StorageError(
                    f"{action}: bucket {self.bucket!r} does not exist at "
                    f"{self._endpoint_shown()} (create it, or fix MLPROV_ARTIFACTS)"
                ) from e
            if status == 403 or code in (
                "AccessDenied",
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "ExpiredToken",
                "InvalidToken",
                "403",
            ):
                raise StorageError(
                    f"{action}: access to {self.uri} denied ({code or status}): check the "
                    "AWS credentials and the bucket policy"
                ) from e
            message = str(error.get("Message", "")) or str(e)
            raise StorageError(f"{action}: S3 error {code or status}: {message}") from e
        except (boto.NoCredentialsError, boto.PartialCredentialsError) as e:
            raise StorageError(
                f"{action}: no AWS credentials found for {self.uri}: set AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials"
            ) from e
        except (boto.EndpointConnectionError, boto.ConnectTimeoutError) as e:
            raise StorageError(
                f"{action}: cannot reach the S3 endpoint {self._endpoint_shown()} "
                "(AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or MLPROV_S3_ENDPOINT_URL)"
            ) from e
        except boto.BotoCoreError as e:
            raise StorageError(f"{action}: {e}") from e

    def _endpoint_shown(self) -> str:
        client = self._client
        return str(client.meta.endpoint_url) if client is not None else "(none)"

    # -- the ArtifactStore methods -----------------------------------------------------

    def _put_file(
        self,
        path: Path,
        name: str,
        progress: ProgressCallback | None,
        observe: ChunkConsumer | None,
        hold: BlobHold | None,
    ) -> StoredBlob:
        action = f"storing {name} in {self.uri}"
        client = self.client
        staging = self._key("staging", uuid.uuid4().hex)
        upload = _StagingUpload(client, self.bucket, staging, self.part_size)
        hasher = hashlib.sha256()
        consumers: list[ChunkConsumer] = [hasher.update, upload.write]
        if observe is not None:
            consumers.append(observe)
        try:
            with self._translated(action):
                size = read_whole_file(
                    path, consumers, display=name, buffer=_buffer(), progress=progress
                )
                upload.finish()
            sha256 = hasher.hexdigest()
            if hold is not None:
                hold(sha256)
            final = self._key("blobs", sha256)
            with self._translated(action):
                if self._head(final):
                    return StoredBlob(sha256, size, False)
                self._copy(staging, final)
            return StoredBlob(sha256, size, True)
        finally:
            upload.discard()

    def _copy(self, source: str, target: str) -> None:
        from boto3.s3.transfer import TransferConfig  # noqa: PLC0415

        config = TransferConfig(
            multipart_threshold=self.copy_threshold,
            multipart_chunksize=self.part_size,
            max_concurrency=4,
        )
        self.client.copy({"Bucket": self.bucket, "Key": source}, self.bucket, target, Config=config)

    def _head(self, key: str) -> bool:
        try:
            with self._translated(f"checking {key} in {self.uri}"):
                self.client.head_object(Bucket=self.bucket, Key=key)
        except FileNotFoundError:
            return False
        return True

    def _put_bytes(self, data: bytes) -> StoredBlob:
        sha256 = hashlib.sha256(data).hexdigest()
        final = self._key("blobs", sha256)
        if self._head(final):
            return StoredBlob(sha256, len(data), False)
        # The key is known up front, and a PUT makes the object visible whole or not at all.
        with self._translated(f"storing bytes in {self.uri}"):
            self.client.put_object(Bucket=self.bucket, Key=final, Body=data)
        return StoredBlob(sha256, len(data), True)

    def _exists(self, sha256: str) -> bool:
        return self._head(self._key("blobs", sha256))

    def _read_chunks(self, sha256: str) -> Iterator[bytes]:
        action = f"reading blob {sha256} from {self.uri}"
        with self._translated(action):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key("blobs", sha256))
            body = response["Body"]
            try:
                yield from body.iter_chunks(READ_CHUNK)
            finally:
                body.close()

    def _delete(self, sha256: str) -> None:
        with self._translated(f"removing blob {sha256} from {self.uri}"):
            self.client.delete_object(Bucket=self.bucket, Key=self._key("blobs", sha256))

    def _list(self) -> Iterator[BlobInfo]:
        start = self._key("blobs", "")
        with self._translated(f"listing blobs of {self.uri}"):
            for item in self._objects(start):
                name = str(item["Key"])[len(start) :]
                if _SHA256_HEX.match(name):  # anything else under blobs/ is not a blob
                    modified = item["LastModified"].astimezone(timezone.utc)
                    yield BlobInfo(name, int(item["Size"]), modified)

    def _objects(self, start: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
            yield from page.get("Contents", [])

    def _remove_staging(self, older_than: datetime) -> int:
        start = self._key("staging", "")
        removed = 0
        with self._translated(f"removing stale staging objects of {self.uri}"):
            for item in list(self._objects(start)):
                if item["LastModified"] < older_than:
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] < older_than and self._idle_since(upload, older_than):
                        self.client.abort_multipart_upload(
                            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                        removed += 1
        return removed

    def _idle_since(self, upload: dict[str, Any], moment: datetime) -> bool:
        """Whether a multipart upload sent no part after ``moment``: a long upload still
        sending parts is in progress, however long ago it started."""
        paginator = self.client.get_paginator("list_parts")
        pages = paginator.paginate(
            Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
        return all(
            part["LastModified"] < moment for page in pages for part in page.get("Parts", [])
        )


class _StagingUpload:
    """Streams one file's chunks to a staging object: a single PUT when the whole file
    fits in one part, else a multipart upload of ``part_size`` parts. Each part is sent by
    a sender thread while the next one is read and hashed, and the next is handed over
    only once the previous one was sent: about two parts are held in memory."""

    def __init__(self, client: BaseClient, bucket: str, key: str, part_size: int) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._part_size = part_size
        self._pending = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []  # appended by the sender thread only
        self._sender: ThreadPoolExecutor | None = None
        self._in_flight: Future[None] | None = None
        self._written = False

    def write(self, chunk: memoryview) -> None:
        self._pending += chunk
        if len(self._pending) >= self._part_size:
            self._send_part(self._part_size)

    def _send_part(self, size: int) -> None:
        if self._upload_id is None:
            created = self._client.create_multipart_upload(Bucket=self._bucket, Key=self._key)
            self._upload_id = str(created["UploadId"])
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlprov-s3-part")
        self._wait_for_part()  # raises what sending the previous part raised
        body = bytes(self._pending[:size])
        del self._pending[:size]
        number = len(self._parts) + 1
        assert self._sender is not None
        self._in_flight = self._sender.submit(self._upload_part, self._upload_id, number, body)

    def _upload_part(self, upload_id: str, number: int, body: bytes) -> None:
        sent = self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=upload_id, PartNumber=number, Body=body
        )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    def _wait_for_part(self) -> None:
        if self._in_flight is not None:
            future, self._in_flight = self._in_flight, None
            future.result()

    def finish(self) -> None:
        if self._upload_id is None:
            self._client.put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._pending))
        else:
            if self._pending:
                self._send_part(len(self._pending))  # the last part may be smaller
            self._wait_for_part()
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            self._upload_id = None
        self._pending.clear()
        self._written = True

    def discard(self) -> None:
        """Stop the sender, remove the staging object (or abort the unfinished upload).
        Failing here is not an error: what is left under staging/ is removed by gc."""
        from botocore import exceptions as boto  # noqa: PLC0415

        if self._sender is not None:
            with contextlib.suppress(Exception):  # already reported, or superseded
                self._wait_for_part()
            self._sender.shutdown(wait=True)
            self._sender = None
        with contextlib.suppress(boto.BotoCoreError, boto.ClientError):
            if self._upload_id is not None:
                self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                )
                self._upload_id = None
            if self._written:
                self._client.delete_object(Bucket=self._bucket, Key=self._key)
                self._written = False


def _buffer() -> bytearray:
    """This thread's read buffer (registration stores files on several threads)."""
    buffer: bytearray | None = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = bytearray(CHUNK_SIZE)
    return buffer

"""The XML documents the S3 subset answers with, in Amazon S3's element names.

Built with ElementTree, so names and values are escaped by the library. Errors have no
namespace (botocore recognises an S3 error by its root element ``Error``); results carry S3's
``http://s3.amazonaws.com/doc/2006-03-01/`` namespace. With ``encoding-type=url`` (which botocore
asks for by default) keys and prefixes are URL-encoded and the document says so, and botocore
decodes them again.
"""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

from omicsfs.localservice.protocol import format_timestamp
from omicsfs.localservice.s3.errors import S3Error
from omicsfs.localservice.s3.listing import Page

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"


@dataclass(frozen=True)
class Listing:
    """What a ListObjects(V2) request asked for, echoed back in its result."""

    bucket: str
    prefix: str
    delimiter: str
    max_keys: int
    url_encoded: bool
    owner: str
    start_after: str | None = None  # V2
    continuation_token: str | None = None  # V2
    marker: str | None = None  # V1

    def encode(self, value: str) -> str:
        return urllib.parse.quote_plus(value, safe="/") if self.url_encoded else value


def error(exc: S3Error, resource: str, request_id: str) -> bytes:
    root = ET.Element("Error")
    _text(root, "Code", exc.code)
    _text(root, "Message", exc.message)
    for name, value in exc.fields.items():
        _text(root, name, value)
    _text(root, "Resource", resource)
    _text(root, "RequestId", request_id)
    return _serialize(root)


def tagging(tags: Mapping[str, str]) -> bytes:
    root = ET.Element("Tagging", xmlns=NAMESPACE)
    tag_set = ET.SubElement(root, "TagSet")
    for key, value in tags.items():
        tag = ET.SubElement(tag_set, "Tag")
        _text(tag, "Key", key)
        _text(tag, "Value", value)
    return _serialize(root)


def list_objects_v2(listing: Listing, page: Page, next_token: str | None) -> bytes:
    root = _list_root(listing)
    if listing.continuation_token is not None:
        _text(root, "ContinuationToken", listing.continuation_token)
    if next_token is not None:
        _text(root, "NextContinuationToken", next_token)
    if listing.start_after is not None:
        _text(root, "StartAfter", listing.encode(listing.start_after))
    _text(root, "KeyCount", str(page.key_count))
    _list_entries(root, listing, page, with_owner=False)
    return _serialize(root)


def list_objects_v1(listing: Listing, page: Page) -> bytes:
    root = _list_root(listing)
    _text(root, "Marker", listing.encode(listing.marker or ""))
    if page.truncated and page.last is not None:
        _text(root, "NextMarker", listing.encode(page.last))
    _list_entries(root, listing, page, with_owner=True)
    return _serialize(root)


def _list_root(listing: Listing) -> ET.Element:
    root = ET.Element("ListBucketResult", xmlns=NAMESPACE)
    _text(root, "Name", listing.bucket)
    _text(root, "Prefix", listing.encode(listing.prefix))
    _text(root, "MaxKeys", str(listing.max_keys))
    if listing.delimiter:
        _text(root, "Delimiter", listing.encode(listing.delimiter))
    if listing.url_encoded:
        _text(root, "EncodingType", "url")
    return root


def _list_entries(root: ET.Element, listing: Listing, page: Page, with_owner: bool) -> None:
    _text(root, "IsTruncated", "true" if page.truncated else "false")
    for obj in page.contents:
        entry = ET.SubElement(root, "Contents")
        _text(entry, "Key", listing.encode(obj.key))
        _text(entry, "LastModified", format_timestamp(obj.last_modified))
        _text(entry, "ETag", obj.etag)
        _text(entry, "Size", str(obj.size))
        _text(entry, "StorageClass", "STANDARD")
        if with_owner:
            owner = ET.SubElement(entry, "Owner")
            _text(owner, "ID", listing.owner)
            _text(owner, "DisplayName", listing.owner)
    for prefix in page.common_prefixes:
        _text(ET.SubElement(root, "CommonPrefixes"), "Prefix", listing.encode(prefix))


def _text(parent: ET.Element, name: str, value: str) -> None:
    ET.SubElement(parent, name).text = value


def _serialize(root: ET.Element) -> bytes:
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text

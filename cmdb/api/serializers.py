"""CMDB API shapes."""

from __future__ import annotations

from rest_framework import serializers

from cmdb.services import DENSITIES, FILTER_OPS, PAGE_SIZES
from exports.models import ExportChange


class CmdbColumnSerializer(serializers.Serializer):
    """A column: ``key`` (in URLs: filters, ``ordering``, ``fields``), ``label`` (as in the CSV), ``kind``."""

    key = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    kind = serializers.ChoiceField(choices=["text", "number", "date"])


class CmdbExportSerializer(serializers.Serializer):
    """The export the rows come from, its age, and whether it is older than ``EXPORT_SCHEDULE`` promises."""

    run = serializers.IntegerField()
    finished = serializers.DateTimeField()
    age_seconds = serializers.IntegerField()
    schedule_seconds = serializers.IntegerField(allow_null=True)
    stale = serializers.BooleanField()


class CmdbRowsSerializer(serializers.Serializer):
    """A page of rows: the number of matches, the columns returned and the rows (``row_id`` plus one value per
    column key: numbers for number columns, ``null`` when blank, text otherwise)."""

    count = serializers.IntegerField()
    columns = CmdbColumnSerializer(many=True)
    results = serializers.ListField(child=serializers.DictField())
    export = CmdbExportSerializer()


class CmdbRowSerializer(serializers.Serializer):
    """One object: every column of the dataset and its page in NetBox (empty without a NetBox URL)."""

    row_id = serializers.CharField()
    netbox_url = serializers.CharField(allow_blank=True)
    columns = CmdbColumnSerializer(many=True)
    row = serializers.DictField()
    export = CmdbExportSerializer()


class CmdbFilterSerializer(serializers.Serializer):
    op = serializers.ChoiceField(choices=FILTER_OPS)
    value = serializers.CharField(required=False, allow_blank=True, max_length=200)
    value2 = serializers.CharField(required=False, allow_blank=True, max_length=200)
    values = serializers.ListField(
        child=serializers.CharField(allow_blank=True, max_length=200), required=False, max_length=200
    )


class CmdbViewSerializer(serializers.Serializer):
    """A saved grid view. Unknown columns are dropped; missing parts take their defaults."""

    columns = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=200)
    hidden = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=200)
    widths = serializers.DictField(child=serializers.IntegerField(), required=False)
    ordering = serializers.ListField(child=serializers.CharField(max_length=101), required=False, max_length=200)
    filters = serializers.DictField(child=CmdbFilterSerializer(), required=False)
    q = serializers.CharField(required=False, allow_blank=True, max_length=200)
    density = serializers.ChoiceField(choices=DENSITIES, required=False)
    page_size = serializers.ChoiceField(choices=PAGE_SIZES, required=False)


class CmdbFacetValueSerializer(serializers.Serializer):
    value = serializers.CharField(allow_blank=True)
    count = serializers.IntegerField()


class CmdbFacetSerializer(serializers.Serializer):
    """A column's values with their row counts under every other filter, most frequent first (up to ``limit``),
    and how many distinct values there are."""

    column = serializers.CharField()
    values = CmdbFacetValueSerializer(many=True)
    distinct = serializers.IntegerField()


class CmdbNamedViewSerializer(serializers.Serializer):
    """A named view: personal, or ``shared`` with everyone who may browse the CMDB. ``view`` is what it shows."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=100)
    dataset = serializers.ChoiceField(choices=["devices", "vms", "merged"])
    shared = serializers.BooleanField(required=False, default=False)
    view = CmdbViewSerializer()
    owner = serializers.CharField(read_only=True)
    mine = serializers.BooleanField(read_only=True)
    can_edit = serializers.BooleanField(read_only=True)
    url = serializers.CharField(read_only=True, help_text="The CMDB page showing this view.")
    created = serializers.DateTimeField(read_only=True)
    updated = serializers.DateTimeField(read_only=True)


class CmdbNamedViewUpdateSerializer(serializers.Serializer):
    """What a PATCH may change: the name, whether it is shared, what it shows."""

    name = serializers.CharField(max_length=100, required=False)
    shared = serializers.BooleanField(required=False)
    view = CmdbViewSerializer(required=False)


class CmdbHistoryEntrySerializer(serializers.Serializer):
    """One export's change: ``added``, ``changed`` (``columns``: column label -> [old, new]) or ``removed``."""

    run = serializers.IntegerField()
    finished = serializers.DateTimeField()
    change = serializers.ChoiceField(choices=ExportChange.Change.choices)
    name = serializers.CharField(allow_blank=True)
    columns = serializers.DictField(child=serializers.ListField(child=serializers.CharField(allow_blank=True)))


class CmdbHistorySerializer(serializers.Serializer):
    """An object's columns in the newest export (``row`` is null once it was removed) and its timeline across the
    exports that compared it, oldest first."""

    row_id = serializers.CharField()
    kind = serializers.CharField(help_text="device or vm")
    netbox_id = serializers.IntegerField()
    name = serializers.CharField(allow_blank=True)
    netbox_url = serializers.CharField(allow_blank=True)
    columns = CmdbColumnSerializer(many=True)
    row = serializers.DictField(allow_null=True)
    timeline = CmdbHistoryEntrySerializer(many=True)
    export = CmdbExportSerializer(allow_null=True)


class CmdbErrorSerializer(serializers.Serializer):
    """An error: ``detail``, or the parameter at fault -> its messages."""

    detail = serializers.CharField(required=False)

"""registry: the thing registry's facts carried as labels, on iot_thing_info and promoted."""

from typing import Annotated, Any

from pydantic import ValidationInfo, field_validator, model_validator

from exporter.config.fields import (
    LABEL_NAME_RE,
    AttributeName,
    LabelName,
    item_itself,
    list_of,
    raw_key,
    unique_by,
)
from exporter.config.yamlfile import StrictSection, fail, show

# Labels iot_thing_info always carries; no registry attribute may take them.
INFO_LABELS = ("thing_name", "thing_type")


class RegistryAttribute(StrictSection):
    """registry.attributes[]: a registry attribute carried on iot_thing_info as a label."""

    attribute: AttributeName
    label: LabelName

    @field_validator("label")
    @classmethod
    def _not_info_label(cls, label: str) -> str:
        if label in INFO_LABELS:
            fail(f'label "{label}" is iot_thing_info\'s own; choose another')
        return label

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        if LABEL_NAME_RE.fullmatch(data) is None:
            fail(
                f"attribute {show(data)} is not a valid label name: write"
                f" {{attribute: {data}, label: NAME}} with a NAME of letters, digits and _"
            )
        return {"attribute": data, "label": data}


class RegistrySettings(StrictSection):
    """Labels from the thing registry: iot_thing_info carries them; a few are promoted."""

    attributes: Annotated[
        tuple[RegistryAttribute, ...],
        unique_by(raw_key("attribute"), "attribute"),
        list_of("attribute names or mappings"),
    ] = ()
    promote: Annotated[
        tuple[LabelName, ...], unique_by(item_itself, "label"), list_of("label names")
    ] = ()

    @field_validator("attributes")
    @classmethod
    def _labels_distinct(
        cls, attributes: tuple[RegistryAttribute, ...]
    ) -> tuple[RegistryAttribute, ...]:
        seen: dict[str, str] = {}
        for item in attributes:
            if item.label in seen:
                fail(
                    f'label "{item.label}" is given to both "{seen[item.label]}"'
                    f' and "{item.attribute}"'
                )
            seen[item.label] = item.attribute
        return attributes

    @field_validator("promote")
    @classmethod
    def _promote_known(cls, promote: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        attributes: tuple[RegistryAttribute, ...] | None = info.data.get("attributes")
        if attributes is None:
            return promote  # attributes has its own error
        known = ("thing_type", *(item.label for item in attributes))
        for label in promote:
            if label not in known:
                fail(
                    f'cannot promote "{label}": it is neither thing_type nor a label of'
                    f" registry.attributes ({', '.join(known)})"
                )
        return promote

    @property
    def info_labels(self) -> tuple[str, ...]:
        """iot_thing_info's labels besides thing_name: thing_type, then each attribute's."""
        return ("thing_type", *(item.label for item in self.attributes))

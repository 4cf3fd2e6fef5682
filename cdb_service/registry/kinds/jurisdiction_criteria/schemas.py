from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cdb_service.kernel import codes
from cdb_service.kernel.geo import normalise_geo_code
from cdb_service.kernel.owners import looks_like_owner
from cdb_service.registry.kinds.fields import OwnerMember, Priority, ShortText, member_of
from cdb_service.registry.kinds.schemas import EntryIn, Strict

Instrument = Annotated[str, member_of("instruments", codes.INSTRUMENTS)]
Competence = Annotated[str, member_of("competences", codes.COMPETENCES)]
SubjectMatter = Annotated[str, member_of("subject-matters", codes.SUBJECT_MATTERS)]
Stage = Annotated[str, member_of("stages", codes.STAGES)]
GeoScheme = Annotated[str, member_of("geo-schemes", codes.GEO_SCHEMES)]


def _spelled(value: Any) -> Any:
    return codes.code_of(value) if isinstance(value, str) else value


def _a_state(value: str) -> str:
    if value == codes.EUROJUST:
        raise ValueError(codes.unknown_code(value, "countries", codes.COUNTRIES))
    return value


# A member state, or a third country an operator registered as an owner (the store
# checks that it is: `registry/store/participation.py`).
GeoCountry = Annotated[
    str,
    BeforeValidator(_spelled),
    OwnerMember("countries", codes.COUNTRIES, codes.GREECE_HINT),
    AfterValidator(_a_state),
]


MAX_GEO_KEYS = 20_000


class GeoKeyIn(Strict):
    scheme: GeoScheme = Field(
        description="what the code is: country, nuts1, nuts2, nuts3, lau, postal-code or "
        "postal-code-prefix"
    )
    code: ShortText = Field(description="the place's code in that scheme (e.g. DE300, 10115)")
    country: GeoCountry = Field(
        description="the country the place lies in (the owner's, except Eurojust's)"
    )

    @model_validator(mode="after")
    def _code_fits_scheme(self) -> GeoKeyIn:
        if self.country not in codes.COUNTRIES and self.scheme != "country":
            # No gazetteer and no postal syntax is known for a third country.
            raise ValueError(
                f"{self.country} is no member state: its places are keyed by the whole "
                f"country only (scheme country, code {self.country})"
            )
        self.code = normalise_geo_code(self.country, self.scheme, self.code)
        return self


class JurisdictionCriterionIn(EntryIn):
    authority_id: uuid.UUID | None = Field(
        default=None, description="the competent authority (its id)"
    )
    authority_code: ShortText | None = Field(
        default=None, description="the competent authority by code (instead of authority_id)"
    )
    instrument: Instrument = Field(
        description="the legal instrument: an instruments code (e.g. eio, eaw)"
    )
    competence: Competence = Field(
        description="what the authority does under it: receive, execute, issue or central"
    )
    subject_matters: list[SubjectMatter] = Field(
        default_factory=list, description="empty means every subject matter"
    )
    stages: list[Stage] = Field(default_factory=list, description="empty means every stage")
    # A court's district in postal codes or municipalities; a whole country is one key.
    geo: list[GeoKeyIn] = Field(
        description="the places it is competent for; a look-up matches the most specific",
        min_length=1,
        max_length=MAX_GEO_KEYS,
    )
    priority: Priority = Field(default=100, description="lower is preferred among equals")

    @model_validator(mode="before")
    @classmethod
    def _geo_country_defaults_to_owner(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("geo"), list):
            owner = codes.code_of(str(data.get("owner", "")))
            if owner != codes.EUROJUST and looks_like_owner(owner):
                data = data | {
                    "geo": [
                        {"country": owner} | g if isinstance(g, dict) else g for g in data["geo"]
                    ]
                }
        return data

    @field_validator("geo")
    @classmethod
    def _distinct_keys(cls, geo: list[GeoKeyIn]) -> list[GeoKeyIn]:
        keys = [(g.scheme, g.code) for g in geo]
        if len(set(keys)) != len(keys):
            raise ValueError("lists the same geo key twice")
        return geo

    @field_validator("geo")
    @classmethod
    def _geo_in_the_owner_s_lane(cls, geo: list[GeoKeyIn], info: ValidationInfo) -> list[GeoKeyIn]:
        owner, instrument = info.data.get("owner"), info.data.get("instrument")
        if owner is not None and owner != codes.EUROJUST:
            foreign = sorted({g.country for g in geo} - {owner})
            if foreign:
                raise ValueError(f"geo keys of {', '.join(foreign)} in a criterion of {owner}")
        elif owner == codes.EUROJUST and any(g.country not in codes.COUNTRIES for g in geo):
            raise ValueError("Eurojust's criteria name member states' places only")
        elif owner == codes.EUROJUST and instrument not in codes.EUROJUST_RECIPIENT:
            # Eurojust receives beside member states' authorities, never instead of them.
            raise ValueError(
                f"Eurojust's criteria may name member states' places only for instruments "
                f"where Eurojust is the recipient ({', '.join(sorted(codes.EUROJUST_RECIPIENT))}),"
                f" not {instrument}"
            )
        return geo

    @model_validator(mode="after")
    def _names_its_authority(self) -> JurisdictionCriterionIn:
        if self.authority_id is None and self.authority_code is None:
            raise ValueError("authority_id or authority_code is required")
        return self

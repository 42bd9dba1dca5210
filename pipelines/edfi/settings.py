"""The settings of one Ed-Fi destination (``config/destinations/*.yaml`` with ``type: edfi``).

Nothing secret lives here: credentials are named (environment variables or an Airflow
connection id) and read when the client starts. Education organization ids and the program
definitions come from here, never from child records.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.codes import ProgramType

DEFAULT_KEY = "default"


class EducationOrganization(BaseModel):
    """Where a program's children are enrolled at the destination."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    school_id: int = Field(description="schoolId of studentSchoolAssociations")
    education_organization_id: int = Field(
        description="educationOrganizationId of the other associations and of the programs"
    )


class ProgramDefinition(BaseModel):
    """An Ed-Fi program (``programs`` resource) the associations point at."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    program_name: str = Field(min_length=1, max_length=60)
    program_type: str = Field(description="a ProgramTypeDescriptor codeValue, e.g. 'Head Start'")


def _default_programs() -> dict[ProgramType, ProgramDefinition]:
    return {
        ProgramType.HEAD_START: ProgramDefinition(
            program_name="Head Start", program_type="Head Start"
        ),
        ProgramType.EARLY_HEAD_START: ProgramDefinition(
            program_name="Early Head Start", program_type="Early Head Start"
        ),
        ProgramType.MIGRANT_SEASONAL: ProgramDefinition(
            program_name="Migrant and Seasonal Head Start", program_type="Head Start"
        ),
        ProgramType.AIAN: ProgramDefinition(
            program_name="American Indian and Alaska Native Head Start", program_type="Head Start"
        ),
    }


def _default_special_education() -> dict[Literal["iep", "ifsp"], ProgramDefinition]:
    return {
        "ifsp": ProgramDefinition(
            program_name="Early Intervention Services Part C",
            program_type="Early Intervention Services Part C",
        ),
        "iep": ProgramDefinition(
            program_name="Preschool Special Education", program_type="Preschool Special Education"
        ),
    }


class Credentials(BaseModel):
    """Where the OAuth client key and secret come from: an Airflow connection (login =
    key, password = secret) when ``airflow_conn_id`` is set, else two environment variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    airflow_conn_id: str | None = None
    client_id_env: str = "EDFI_CLIENT_ID"
    client_secret_env: str = "EDFI_CLIENT_SECRET"


class EdfiSettings(BaseModel):
    """One Ed-Fi API destination."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=80)
    type: Literal["edfi"] = "edfi"
    description: str = ""
    base_url: str = Field(description="root of the API; the discovery document is served there")
    data_standard: Literal[5, 6] = 5
    school_year: int | None = Field(
        default=None, description="for year-specific ODS/API instances: /data/v3/{year}/ed-fi"
    )
    concurrency: int = Field(default=8, ge=1, le=64)
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=20)
    max_backoff_seconds: float = Field(default=30.0, gt=0)
    namespace_overrides: dict[str, str] = Field(
        default_factory=dict,
        description="descriptor type -> namespace, e.g. GradeLevelDescriptor: "
        "uri://education.vermont.gov/GradeLevelDescriptor",
    )
    education_organizations: dict[str, EducationOrganization] = Field(
        description="program code (or 'default') -> ids at the destination"
    )
    programs: dict[ProgramType, ProgramDefinition] = Field(default_factory=_default_programs)
    special_education_programs: dict[Literal["iep", "ifsp"], ProgramDefinition] = Field(
        default_factory=_default_special_education
    )
    student_id_program_prefix: bool = Field(
        default=True,
        description="prefix a plain child_local_id used as studentUniqueId with the program "
        "code (local ids are unique only within a program; program_code must then be "
        "permitted); never applied to state ids or pseudonyms",
    )
    credentials: Credentials = Field(default_factory=Credentials)

    @field_validator("base_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value.rstrip("/") + "/"

    @field_validator("namespace_overrides")
    @classmethod
    def _namespaces(cls, value: dict[str, str]) -> dict[str, str]:
        for descriptor_type, namespace in value.items():
            if not descriptor_type.endswith("Descriptor"):
                raise ValueError(f"namespace_overrides key {descriptor_type}: not a descriptor")
            if not namespace.startswith("uri://") or "#" in namespace:
                raise ValueError(f"namespace_overrides {descriptor_type}: not a uri:// namespace")
            if not namespace.rstrip("/").endswith("/" + descriptor_type):
                raise ValueError(
                    f"namespace_overrides {descriptor_type}: the namespace must end with "
                    f"/{descriptor_type}"
                )
        return {k: v.rstrip("/") for k, v in value.items()}

    @field_validator("programs", mode="before")
    @classmethod
    def _merge_programs(cls, value: object) -> object:
        """Given definitions replace the defaults one program type at a time."""
        if isinstance(value, dict):
            return {**_default_programs(), **value}
        return value

    @field_validator("special_education_programs", mode="before")
    @classmethod
    def _merge_special_education(cls, value: object) -> object:
        if isinstance(value, dict):
            return {**_default_special_education(), **value}
        return value

    @model_validator(mode="after")
    def _has_organizations(self) -> EdfiSettings:
        if not self.education_organizations:
            raise ValueError("education_organizations: name at least a 'default'")
        return self

    def organization(self, program_code: str) -> EducationOrganization | None:
        """The ids for ``program_code``, else the default, else ``None``."""
        return self.education_organizations.get(
            program_code, self.education_organizations.get(DEFAULT_KEY)
        )

"""The catalog's tables: the monolith's columns, in the service's database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extracted.chassis.database import ID, Base, Money

__all__ = ["Category", "Product"]


class Category(Base):
    """A shelf of the shop (``catalog_category``)."""

    __tablename__ = "catalog_category"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")


class Product(Base):
    """Something the shop sells (``catalog_product``)."""

    __tablename__ = "catalog_product"
    __table_args__ = (
        Index("catalog_product_active_category", "is_active", "category_id"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category_id: Mapped[int] = mapped_column(
        ID, ForeignKey("catalog_category.id", ondelete="RESTRICT"), index=True
    )
    price: Mapped[Decimal] = mapped_column(Money(10))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    category: Mapped[Category] = relationship(lazy="joined", innerjoin=True)

"""The inventory's tables, plus the slice of the catalog it needs."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extracted.chassis.database import ID, Base

__all__ = ["ProductRef", "StockLevel", "Warehouse"]


class ProductRef(Base):
    """What inventory knows of a product: a projection of catalog events."""

    __tablename__ = "inventory_product"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=False)
    sku: Mapped[str] = mapped_column(String(32))
    is_active: Mapped[bool]


class Warehouse(Base):
    """A place stock is kept (``AMS``, ``BER``...)."""

    __tablename__ = "inventory_warehouse"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(100))


class StockLevel(Base):
    """Units of one product in one warehouse; ``reserved`` never exceeds them."""

    __tablename__ = "inventory_stocklevel"
    __table_args__ = (
        UniqueConstraint("product_id", "warehouse_id"),
        CheckConstraint("reserved <= on_hand", name="stock_reserved_lte_on_hand"),
        CheckConstraint("reserved >= 0", name="stock_reserved_non_negative"),
    )

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    # No foreign key: product rows arrive by events from another aggregate.
    product_id: Mapped[int] = mapped_column(ID, index=True)
    warehouse_id: Mapped[int] = mapped_column(
        ID, ForeignKey("inventory_warehouse.id", ondelete="RESTRICT")
    )
    on_hand: Mapped[int] = mapped_column(default=0)
    reserved: Mapped[int] = mapped_column(default=0)

    warehouse: Mapped[Warehouse] = relationship(lazy="joined", innerjoin=True)

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

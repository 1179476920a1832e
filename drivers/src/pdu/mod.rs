//! SMS PDU codec (3GPP 23.040 / 23.038).
